"""Request body limits (SPEC "Limits"): 1 MiB, list imports 50 MiB.

A declared ``Content-Length`` over the limit is answered 413 before any byte of the
body is read; a chunked body is counted as it streams in and cut off at the limit.
Either way the answer closes the connection, so the rest is never read.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mangahub.http.errors import error_response

MAX_BODY_BYTES = 1024 * 1024
MAX_IMPORT_BODY_BYTES = 50 * 1024 * 1024
# Path prefixes with a larger limit than the default.
LARGE_BODIES: Mapping[str, int] = {"/api/library/import": MAX_IMPORT_BODY_BYTES}


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit; as an
    HTTPException it passes FastAPI's body parsing and is answered 413 like others."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        default: int = MAX_BODY_BYTES,
        larger: Mapping[str, int] = LARGE_BODIES,
    ) -> None:
        self.app = app
        self.default = default
        self.larger = dict(larger)

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.larger.items():
            if path == prefix or path.startswith(prefix + "/"):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal received, over
            if over:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if over:  # whatever answers, the unread rest must not be read
                    headers = [*message.get("headers", []), (b"connection", b"close")]
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except Exception:
            if not over or started:
                raise
            # Nothing has answered the cut-off request yet.
            await _too_large(limit)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> ASGIApp:
    return error_response(
        413,
        "bad_request",
        f"request body larger than {limit} bytes",
        {"limit": limit},
        headers={"Connection": "close"},
    )
