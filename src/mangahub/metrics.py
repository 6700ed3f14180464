"""Prometheus metrics of the long-lived doors (TCP, UDP, WebSocket) and of Redis.

Everything lives in one registry per process, :data:`PROCESS_REGISTRY`:

- counters that the doors increment as they work (messages by type, errors by code);
- a collector that reads the live state of the tracked servers at scrape time
  (connections, subscribers, the UDP hub's datagram counts, Redis up/down), so the
  hot paths pay nothing for them.

Every ``/metrics`` of the process includes this registry (see ``http/app.py``); a part
without the HTTP door serves it on ``metrics_port`` when that is set. Another door
adds its own metrics by creating them with ``registry=PROCESS_REGISTRY``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PROCESS_REGISTRY = CollectorRegistry()

TCP_ERRORS = Counter(
    "mangahub_tcp_errors_total",
    "TCP error frames sent, by code",
    ["code"],
    registry=PROCESS_REGISTRY,
)
WS_MESSAGES = Counter(
    "mangahub_ws_messages_total",
    "WebSocket chat messages, by direction and type (out: one per member reached)",
    ["direction", "type"],
    registry=PROCESS_REGISTRY,
)

# Label values are fixed sets: anything else is counted as "other".
WS_TYPES = frozenset({"join", "chat", "leave", "ping", "system"})


def label(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else "other"


class _Tracked:
    """Weak references to the live objects the collector reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, weakref.WeakSet[Any]] = {}

    def add(self, kind: str, obj: object) -> None:
        with self._lock:
            self._objects.setdefault(kind, weakref.WeakSet()).add(obj)

    def discard(self, kind: str, obj: object) -> None:
        with self._lock:
            self._objects.get(kind, weakref.WeakSet()).discard(obj)

    def get(self, kind: str) -> list[Any]:
        with self._lock:
            return list(self._objects.get(kind, ()))


_tracked = _Tracked()


def track(kind: str, obj: object) -> None:
    """Report ``obj`` (``"tcp"``: a TcpServer, ``"udp"``: a UdpServer, ``"ws"``: a chat
    Hub, ``"redis"``: a RedisLink) until it is garbage or :func:`untrack` is called."""
    _tracked.add(kind, obj)


def untrack(kind: str, obj: object) -> None:
    _tracked.discard(kind, obj)


class _LiveState(Collector):
    """Gauges and hub counters read from the tracked objects at scrape time. Reads of
    ints and sizes only: safe from a scrape thread while the event loop runs."""

    def collect(self) -> Iterable[Metric]:
        yield from self._tcp()
        yield from self._udp()
        yield from self._ws()
        yield from self._redis()

    def _tcp(self) -> Iterator[Metric]:
        servers = _tracked.get("tcp")
        yield GaugeMetricFamily(
            "mangahub_tcp_connections",
            "Open TCP sessions",
            value=sum(s.connection_count for s in servers),
        )
        # Plain ints kept by the servers: a prometheus Counter's lock per message
        # cost more than the rest of an update's handling in the server.
        messages = CounterMetricFamily(
            "mangahub_tcp_messages",
            "TCP messages, by direction and type",
            labels=["direction", "type"],
        )
        totals: dict[tuple[str, str], int] = {}
        for server in servers:
            for key, count in server.counts.items():
                totals[key] = totals.get(key, 0) + count
        for (direction, kind), count in sorted(totals.items()):
            messages.add_metric([direction, kind], count)
        yield messages

    def _udp(self) -> Iterator[Metric]:
        hubs = [s.hub for s in _tracked.get("udp")]
        yield GaugeMetricFamily(
            "mangahub_udp_subscribers", "Live UDP subscriptions", value=sum(len(h) for h in hubs)
        )
        datagrams = CounterMetricFamily(
            "mangahub_udp_datagrams",
            "UDP datagrams: received, notifications sent, retried, acked, given up, bad",
            labels=["kind"],
        )
        fields = {
            "received": "datagrams_in",
            "sent": "notifications_sent",
            "retried": "resent",
            "acked": "acked",
            "gave_up": "gave_up",
            "bad": "bad_datagrams",
        }
        for kind, field in fields.items():
            datagrams.add_metric([kind], sum(getattr(h.stats, field) for h in hubs))
        yield datagrams

    def _ws(self) -> Iterator[Metric]:
        hubs = _tracked.get("ws")
        stats = [h.stats() for h in hubs]
        yield GaugeMetricFamily(
            "mangahub_ws_connections",
            "Open WebSocket chat connections",
            value=sum(s["clients"] for s in stats),
        )
        yield GaugeMetricFamily(
            "mangahub_ws_rooms",
            "Chat rooms with members here",
            value=sum(s["rooms"] for s in stats),
        )
        frames = CounterMetricFamily(
            "mangahub_ws_frames",
            "Frames sent to chat sockets: straight to the socket, or queued behind a backed-up one",
            labels=["path"],
        )
        for path in ("direct", "queued"):
            frames.add_metric([path], sum(getattr(h.frames, path) for h in hubs))
        yield frames

    def _redis(self) -> Iterator[Metric]:
        links = _tracked.get("redis")
        if not links:
            return
        yield GaugeMetricFamily(
            "mangahub_redis_up", "1 while Redis is reachable", value=min(int(x.up) for x in links)
        )
        yield CounterMetricFamily(
            "mangahub_redis_outages",
            "Times Redis became unreachable",
            value=sum(x.outages for x in links),
        )


PROCESS_REGISTRY.register(_LiveState())


class ProcessMetrics(Collector):
    """Forwards :data:`PROCESS_REGISTRY` into another registry (an HTTP app's)."""

    def collect(self) -> Iterable[Metric]:
        return PROCESS_REGISTRY.collect()


class MetricsEndpoint:
    """``GET /metrics`` of :data:`PROCESS_REGISTRY` on its own port, for a part that
    has no HTTP door (a small threaded server: scrapes never touch the event loop)."""

    def __init__(self, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, addr=host, registry=PROCESS_REGISTRY)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
