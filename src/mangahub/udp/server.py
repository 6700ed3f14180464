"""The UDP notification door (port 8082): an asyncio DatagramProtocol around
:class:`~mangahub.udp.protocol.NotificationHub`.

The hub decides everything; this module does what needs I/O or a clock:

- every datagram goes to the hub with ``loop.time()``; replies go out at once;
- a SUBSCRIBE's token is verified here (``runtime.tokens``) and the hub is told how
  long it has left (the subscription ends with it unless a SUBSCRIBE renews it);
  an accepted user gets a *feed*: a bus subscription to ``notify:<user_id>``, so
  notifications raised by any process (HTTP, trigger, source sync; Redis in
  scale-out) reach this socket;
- the backlog (undelivered rows, oldest first, in pages) is loaded only once the
  feed listens, so nothing committed meanwhile falls between the two (the hub
  drops the copy that arrives both ways);
- ACKs are written by one task in batches (group commit), each only for the
  notification's own user;
- one timer task wakes at the hub's next deadline for re-sends and expiry (of
  silent subscribers and of tokens).

Bounds: the hub's (subscribers, in flight per user), each feed's bus queue, the
ACK queue, concurrent backlog loads. When the socket's send buffer is full,
datagrams are dropped, not queued: NOTIFICATIONs are re-sent anyway, and a lost
reply is the client's timeout and retry (UDP semantics).

Shutdown (:meth:`UdpServer.stop`): ignore new datagrams, tell subscribers to
SUBSCRIBE again, stop the feeds, write the ACKs already received, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from mangahub import metrics
from mangahub.app import Runtime
from mangahub.bus import Subscription
from mangahub.domain.errors import Unauthorized
from mangahub.udp.protocol import (
    AckAccepted,
    Address,
    BacklogWanted,
    HubEvent,
    HubLimits,
    NotificationHub,
    RetryPolicy,
    SubscribeRequested,
    SubscriberGone,
)

log = logging.getLogger(__name__)

PROBE_TYPE = "udp_feed_probe"
"""Events of this type on ``notify:<user>`` are the door's own subscription probes;
every consumer of the topic ignores types it does not know."""


@dataclass(frozen=True, slots=True)
class UdpConfig:
    """Tunables of the UDP door; the defaults are SPEC's (tests shorten the times)."""

    retry: RetryPolicy = RetryPolicy()
    limits: HubLimits = HubLimits()
    backlog_page: int = 64
    """Undelivered notifications sent per backlog page (the next page follows once
    this one is ACKed or given up)."""
    feed_queue: int = 256
    """Bus events buffered per subscribed user; an overflow reloads the backlog."""
    ack_queue: int = 4096
    ack_batch: int = 256
    max_backlog_loads: int = 8
    """Backlog queries running at once, across users."""
    feed_ready_timeout: float = 5.0
    receive_buffer: int = 4 * 1024 * 1024
    """SO_RCVBUF asked for (the kernel caps it at net.core.rmem_max): a fan-out comes
    back as a burst of ACKs, and the default ~208 KiB drops a few hundred."""


class _Endpoint(asyncio.DatagramProtocol):
    """Transport callbacks, forwarded to the server."""

    def __init__(self, server: UdpServer) -> None:
        self._server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, but behave as one.
        self._server._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._server._on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" for a client that went away: nothing to do, its
        # subscription expires.
        log.debug("udp: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._closed.set()

    def pause_writing(self) -> None:
        self._server._can_send = False

    def resume_writing(self) -> None:
        self._server._can_send = True


class _Feed:
    """One subscribed user's bus subscription, pumped into the hub."""

    def __init__(self, server: UdpServer, user_id: uuid.UUID) -> None:
        self.user_id = user_id
        self.ready = asyncio.Event()
        self._server = server
        self._stopping = False
        self._listening = False
        self._dropped = 0
        self.task = asyncio.create_task(self._run(), name=f"udp-feed-{str(user_id)[:8]}")

    def stop(self) -> None:
        self._stopping = True
        self.ready.set()
        # Cancelled only once subscribed: cancelling inside bus.subscribe() could
        # leave a registration behind that nobody closes.
        if self._listening:
            self.task.cancel()

    async def _run(self) -> None:
        server = self._server
        try:
            subscription = await server.runtime.bus.subscribe(
                f"notify:{self.user_id}", maxsize=server.config.feed_queue
            )
        except Exception:
            log.warning("udp: no live notifications for %s (bus)", self.user_id, exc_info=True)
            self.ready.set()  # the backlog still brings what is stored
            if server._feeds.get(self.user_id) is self:
                del server._feeds[self.user_id]  # the next SUBSCRIBE tries again
            return
        try:
            if self._stopping:
                return
            self._listening = True
            try:
                await self._confirm(subscription)
            except EOFError:
                raise
            except Exception:  # timeout or bus error: go on, the backlog is still read
                log.warning("udp: bus probe failed for %s", self.user_id, exc_info=True)
            self.ready.set()
            self._dropped = subscription.dropped
            while not self._stopping:
                _topic, event = await subscription.get()
                self._on_event(subscription, event)
        except EOFError:
            return
        finally:
            self.ready.set()
            await subscription.close()

    async def _confirm(self, subscription: Subscription) -> None:
        """Return once the subscription provably receives: Redis SUBSCRIBE takes effect
        some time after the call returns, and the backlog must not be read before
        (a notification committed after the read and published before the bus
        listens would reach neither). Publishes a probe until it comes back."""
        topic = f"notify:{self.user_id}"
        probe = {"type": PROBE_TYPE, "id": uuid.uuid4().hex}
        async with asyncio.timeout(self._server.config.feed_ready_timeout):
            while True:
                await self._server.runtime.bus.publish(topic, probe)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.25):
                        while True:
                            _topic, event = await subscription.get()
                            if event == probe:
                                return
                            self._on_event(subscription, event)
                if self._stopping:
                    # On Python 3.11 a cancel that lands as the timeout fires comes
                    # out as TimeoutError; the stop must not be lost with it.
                    raise EOFError("feed stopped")

    def _on_event(self, subscription: Subscription, event: Mapping[str, Any]) -> None:
        if subscription.dropped != self._dropped:
            # The bus lost events for us; storage has them all.
            self._dropped = subscription.dropped
            self._server._want_backlog(self.user_id, 0)
        if event.get("type") == "notification":
            self._server._deliver(self.user_id, event)


class UdpServer:
    """The ``udp`` part of ``mangahub serve``: SPEC "UDP notifications"."""

    name = "udp"

    def __init__(
        self, runtime: Runtime, host: str, port: int, config: UdpConfig | None = None
    ) -> None:
        self.runtime = runtime
        self.host = host
        self.port = port
        self.config = config or UdpConfig()
        self.hub = NotificationHub(self.config.retry, self.config.limits)
        self.dropped_sends = 0
        self.dropped_acks = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._closed = asyncio.Event()
        self._closing = False
        self._can_send = True
        self._feeds: dict[uuid.UUID, _Feed] = {}
        self._feed_tasks: set[asyncio.Task[None]] = set()
        self._backlog_next: dict[uuid.UUID, int] = {}
        self._backlog_tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._backlog_slots = asyncio.Semaphore(self.config.max_backlog_loads)
        self._acks: asyncio.Queue[tuple[uuid.UUID, int]] = asyncio.Queue(self.config.ack_queue)
        self._wake = asyncio.Event()
        self._armed: float | None = None
        self._helpers: list[asyncio.Task[None]] = []

    @property
    def address(self) -> tuple[str, int]:
        if self._transport is None:
            raise RuntimeError("udp server is not listening")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    @property
    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.hub = NotificationHub(self.config.retry, self.config.limits, now=loop.time())
        await loop.create_datagram_endpoint(lambda: _Endpoint(self), sock=self._bind())
        metrics.track("udp", self)  # subscribers and the hub's datagram counts
        self._helpers = [
            asyncio.create_task(self._timer_loop(), name="udp-timer"),
            asyncio.create_task(self._ack_loop(), name="udp-acks"),
        ]

    def _bind(self) -> socket.socket:
        # Our own socket, so its buffer size can be set before the first datagram.
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, self.port, type=socket.SOCK_DGRAM
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.config.receive_buffer)
            sock.bind(address)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    async def stop(self, timeout: float) -> None:
        """Stop serving; write the ACKs received so far (within ``timeout``); close."""
        if self._transport is None or self._closing:
            return
        self._closing = True
        deadline = self._now + timeout
        self.hub.close_all(self._now)  # goodbyes, and every feed is told to stop
        self._pump()
        for task in self._backlog_tasks.values():
            task.cancel()
        await asyncio.gather(*self._backlog_tasks.values(), return_exceptions=True)
        for feed in list(self._feeds.values()):
            feed.stop()
        await asyncio.gather(*self._feed_tasks, return_exceptions=True)
        try:
            async with asyncio.timeout_at(deadline):
                await self._acks.join()
        except TimeoutError:
            log.warning("udp: %d ACKs not written at shutdown", self._acks.qsize())
        for task in self._helpers:
            task.cancel()
        await asyncio.gather(*self._helpers, return_exceptions=True)
        self._transport.close()
        metrics.untrack("udp", self)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._closed.wait()

    # -- datagrams in, datagrams out ----------------------------------------------------

    def _on_datagram(self, data: bytes, address: Address) -> None:
        if self._closing:
            return
        try:
            self.hub.receive_datagram(data, address, self._now)
        except Exception:  # one bad datagram must never take the door down
            log.exception("udp: failed to handle a datagram from %s:%d", *address)
        self._pump()

    def _pump(self) -> None:
        """Send what the hub queued, act on its events (which may queue more), and
        re-arm the timer if the hub's next deadline moved earlier."""
        while True:
            for payload, address in self.hub.datagrams_to_send():
                self._send(payload, address)
            events = self.hub.take_events()
            if not events:
                break
            for event in events:
                try:
                    self._handle(event)
                except Exception:
                    log.exception("udp: failed to handle %s", type(event).__name__)
        deadline = self.hub.next_deadline()
        if deadline is not None and (self._armed is None or deadline < self._armed):
            self._wake.set()

    def _send(self, payload: bytes, address: Address) -> None:
        if self._transport is None or not self._can_send or self._transport.is_closing():
            self.dropped_sends += 1
            return
        try:
            self._transport.sendto(payload, address)
        except OSError as exc:
            self.dropped_sends += 1
            log.debug("udp: send to %s:%d failed: %s", *address, exc)

    def _handle(self, event: HubEvent) -> None:
        match event:
            case SubscribeRequested():
                self._subscribe(event)
            case AckAccepted(user_id, notification_id):
                try:
                    self._acks.put_nowait((user_id, notification_id))
                except asyncio.QueueFull:
                    # Not recorded: the notification comes again on the next
                    # SUBSCRIBE and the client drops the duplicate by id.
                    self.dropped_acks += 1
            case BacklogWanted(user_id, after_id):
                self._want_backlog(user_id, after_id)
            case SubscriberGone(user_id, reason):
                log.debug("udp: %s gone (%s)", user_id, reason)
                self._backlog_next.pop(user_id, None)
                feed = self._feeds.pop(user_id, None)
                if feed is not None:
                    feed.stop()

    def _subscribe(self, request: SubscribeRequested) -> None:
        now = self._now
        if self._closing:
            self.hub.reject(request.address, "UNAVAILABLE", "server shutting down", now)
            return
        try:
            principal = self.runtime.tokens.verify(request.token)
        except Unauthorized as exc:
            self.hub.reject(request.address, "UNAUTHORIZED", exc.message, now)
            return
        current = self.hub.subscriber(principal.user_id)
        renewal = current is not None and current.address == request.address
        # Relative seconds on the hub's clock: the wall clock only converts once.
        if not self.hub.accept(principal.user_id, request.address, now, principal.seconds_left()):
            return
        if principal.user_id not in self._feeds:
            feed = _Feed(self, principal.user_id)
            self._feeds[principal.user_id] = feed
            self._feed_tasks.add(feed.task)
            feed.task.add_done_callback(self._feed_tasks.discard)
            if renewal:
                # The feed had failed (bus down), so events may have been missed; a
                # renewal does not read the backlog by itself.
                self._want_backlog(principal.user_id, 0)

    def _deliver(self, user_id: uuid.UUID, fields: Mapping[str, Any]) -> None:
        if self.hub.send_notification(user_id, fields, self._now):
            self._pump()

    # -- backlog ------------------------------------------------------------------------

    def _want_backlog(self, user_id: uuid.UUID, after_id: int) -> None:
        if self._closing:
            return
        # One loader per user; requests arriving meanwhile merge into one more run.
        current = self._backlog_next.get(user_id)
        self._backlog_next[user_id] = after_id if current is None else min(current, after_id)
        if user_id not in self._backlog_tasks:
            self._backlog_tasks[user_id] = asyncio.create_task(
                self._load_backlog(user_id), name=f"udp-backlog-{str(user_id)[:8]}"
            )

    async def _load_backlog(self, user_id: uuid.UUID) -> None:
        page = self.config.backlog_page
        try:
            while (after_id := self._backlog_next.pop(user_id, None)) is not None:
                feed = self._feeds.get(user_id)
                if feed is None:
                    return
                # Listen first, then read: a notification committed in between is
                # in the query or on the bus (or both; the hub drops the copy).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.feed_ready_timeout):
                        await feed.ready.wait()
                async with self._backlog_slots:
                    rows = await self.runtime.notifications.undelivered(user_id, page, after_id)
                now = self._now
                for row in rows:
                    self.hub.send_notification(user_id, row.model_dump(mode="json"), now)
                self.hub.backlog_loaded(user_id, rows[-1].id if len(rows) == page else None)
                self._pump()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Nothing lost: the rows stay undelivered for the next SUBSCRIBE.
            log.warning("udp: could not load the backlog of %s", user_id, exc_info=True)
        finally:
            self._backlog_tasks.pop(user_id, None)

    # -- helper tasks -------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        while True:
            self._armed = self.hub.next_deadline()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(self._armed):
                    await self._wake.wait()
            if not self._closing:
                self.hub.on_timer(self._now)
                self._pump()

    async def _ack_loop(self) -> None:
        """Write ACKs in batches: one transaction for whatever queued up meanwhile."""
        while True:
            batch = [await self._acks.get()]
            while len(batch) < self.config.ack_batch:
                try:
                    batch.append(self._acks.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self.runtime.notifications.mark_delivered_many(batch)
            except Exception:
                log.warning("udp: could not record %d ACKs", len(batch), exc_info=True)
            finally:
                for _ in batch:
                    self._acks.task_done()
