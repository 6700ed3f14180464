"""Pure ASGI middleware: path tolerance, request ids and Prometheus request metrics."""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mangahub.logs import accept_request_id, request_id

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


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            # The handler name keeps label cardinality bounded (ids are never labels).
            template = getattr(route, "name", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(scope["method"], template).observe(
                time.perf_counter() - start
            )


class AccessLogMiddleware:
    """``http_access_log``: one INFO line per request on ``mangahub.access``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            client = scope.get("client")
            query = scope.get("query_string", b"")[:1024]  # a line stays a line
            access_log.info(
                '%s "%s %s%s" %d %.1f ms',
                client[0] if client else "-",
                scope["method"],
                scope["path"],
                "?" + query.decode("latin-1") if query else "",
                status,
                (time.perf_counter() - start) * 1000,
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
