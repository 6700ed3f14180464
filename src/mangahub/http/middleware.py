"""Pure ASGI middleware: path tolerance, request ids and Prometheus request metrics."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mangahub.http.responses import send_json_bytes
from mangahub.logs import accept_request_id, request_id
from mangahub.readmodels import CatalogReadModel

access_log = logging.getLogger("mangahub.access")


class TrailingSlashMiddleware:
    """Serve ``/api/manga/`` exactly like ``/api/manga`` (no redirect round trip)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = dict(scope)
                scope["path"] = path.rstrip("/") or "/"
                raw = scope.get("raw_path")
                if raw:
                    scope["raw_path"] = raw.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


class HttpMetrics:
    """Request counters and latency histograms, labelled by handler."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "mangahub_http_requests_total",
            "HTTP requests",
            ["method", "handler", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "mangahub_http_request_seconds",
            "HTTP request latency",
            ["method", "handler"],
            registry=registry,
        )
        # Labelled children by label values: .labels() locks and hashes on every call.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, handler: str, status: int, seconds: float) -> None:
        counter = self._counters.get((method, handler, status))
        if counter is None:
            counter = self.requests.labels(method, handler, str(status))
            self._counters[(method, handler, status)] = counter
        counter.inc()
        histogram = self._histograms.get((method, handler))
        if histogram is None:
            histogram = self.latency.labels(method, handler)
            self._histograms[(method, handler)] = histogram
        histogram.observe(seconds)


class _StatusRecorder:
    """A ``send`` that remembers the response status (500 until one is sent: an app
    that failed before answering is counted as the 500 the server then sends)."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


class _AfterEachRequest:
    """Runs the app, then :meth:`finished` with the status it answered and how long
    it took (also when it failed). Other ASGI traffic passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        sent = _StatusRecorder(send)
        try:
            await self.app(scope, receive, sent)
        finally:
            self.finished(scope, sent.status, time.perf_counter() - start)

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        raise NotImplementedError


class MetricsMiddleware(_AfterEachRequest):
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        # The handler name keeps label cardinality bounded (ids are never labels).
        template = getattr(route, "name", None) or "unmatched"
        self.metrics.observe(scope["method"], template, status, seconds)


class AccessLogMiddleware(_AfterEachRequest):
    """``http_access_log``: one INFO line per request on ``mangahub.access``."""

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        client = scope.get("client")
        query = scope.get("query_string", b"")[:1024]  # a line stays a line
        access_log.info(
            '%s "%s %s%s" %d %.1f ms',
            client[0] if client else "-",
            scope["method"],
            scope["path"],
            "?" + query.decode("latin-1") if query else "",
            status,
            seconds * 1000,
        )


class RequestIdMiddleware:
    """Give each HTTP request an id (the caller's ``X-Request-ID`` when well-formed),
    put it in the log context for everything the request does, and echo it back."""

    header = b"x-request-id"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == self.header), None)
        rid = accept_request_id(incoming.decode("latin-1") if incoming is not None else None)
        token = request_id.set(rid)
        # Also in the request's state: an unhandled error is answered by Starlette's
        # outermost handler, after this middleware (and the log context) has unwound.
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != self.header]
                message = {**message, "headers": [*headers, (self.header, rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


class CachedSeriesMiddleware:
    """``GET /api/manga/{id}`` straight from the catalog read model when this process
    holds the series' JSON: no routing, dependencies or validation for the most
    frequent request. A miss (or anything else) goes on to the app, whose route loads
    and caches the series, so answers are the same bytes either way."""

    def __init__(self, app: ASGIApp, reads: CatalogReadModel, handler: str) -> None:
        self.app = app
        self.reads = reads
        # Counted as the handler it stands in for (MetricsMiddleware reads route.name).
        self.route = SimpleNamespace(name=handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]:
            path: str = scope["path"]
            if path.startswith(_SERIES_PREFIX):
                tail = path[len(_SERIES_PREFIX) :]
                if tail.isascii() and tail.isdigit() and len(tail) <= 10:
                    body = self.reads.cached(int(tail), "json")
                    if body is not None:
                        scope["route"] = self.route
                        await send_json_bytes(send, body)
                        return
        await self.app(scope, receive, send)


_SERIES_PREFIX = "/api/manga/"
