"""One error envelope for every HTTP answer: ``{"error": {code, message, details}}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mangahub.domain.errors import MangaHubError
from mangahub.logs import request_id

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    409: "conflict",
    413: "bad_request",
    415: "bad_request",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


WebSocketEndpoint = Callable[[WebSocket], Awaitable[None]]


class KeepAliveApp(FastAPI):
    """FastAPI whose unexpected errors, once answered 500 in the error shape, end there.

    Starlette re-raises them after answering, and uvicorn then drops the connection;
    a failed request must not cost the client its keep-alive connection.

    A WebSocket endpoint registered with :meth:`serve_websocket` is called straight
    from here: none of the middlewares acts on a WebSocket (each passes it through;
    trailing-slash tolerance is kept by the lookup), the endpoint takes no dependency,
    and every coroutine of the stack would stay alive as long as the socket is open.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._websockets: dict[str, WebSocketEndpoint] = {}

    def serve_websocket(self, path: str, endpoint: WebSocketEndpoint) -> None:
        """Serve WebSocket connections to ``path`` (or ``path/``) by ``endpoint``."""
        self._websockets[path] = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not self.root_path:
            path: str = scope["path"]
            endpoint = self._websockets.get(path.rstrip("/") or "/")
            if endpoint is not None:
                scope["app"] = self
                await endpoint(WebSocket(scope, receive, send))
                return
        await super().__call__(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                # WebSocket frames (a chat fan-out sends one per member) skip the wrapper.
                await inner(scope, receive, send)
                return
            answered = False

            async def tracked(message: Message) -> None:
                nonlocal answered
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    answered = True
                await send(message)

            try:
                await inner(scope, receive, tracked)
            except Exception:
                if not answered:
                    raise
                # Already logged by the ``Exception`` handler below.

        return app


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        details.append(
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
                "message": err.get("msg", ""),
                "type": err.get("type", ""),
            }
        )
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MangaHubError)
    async def domain_error(_: Request, exc: MangaHubError) -> JSONResponse:
        headers = None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers = {"Retry-After": str(retry_after)}
        if exc.http_status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
        return error_response(exc.http_status, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        # A body that is not JSON at all is a bad request, not a rule violation.
        if any(d["type"] == "json_invalid" for d in details):
            return error_response(400, "bad_request", "request body is not valid JSON", details)
        return error_response(422, "validation_error", "request validation failed", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(
            exc.status_code, "internal" if exc.status_code >= 500 else "bad_request"
        )
        return error_response(
            exc.status_code, code, str(exc.detail), None, dict(exc.headers or {}) or None
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Runs outside RequestIdMiddleware: restore the request's id for the log line
        # and the response header.
        rid: str | None = getattr(request.state, "request_id", None)
        token = request_id.set(rid)
        try:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
        finally:
            request_id.reset(token)
        headers = {"X-Request-ID": rid} if rid else None
        return error_response(500, "internal", "internal server error", None, headers)
