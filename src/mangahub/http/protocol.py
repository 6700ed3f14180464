"""uvicorn's httptools protocol with limits on the request head (SPEC "Limits").

httptools itself buffers a request line or header of any size and waits for it
forever. Here, per request:

- a URL (path and query) over ``MAX_URL_BYTES`` → 414,
- request headers over ``MAX_HEADER_BYTES`` → 431,
- a head not complete ``HEAD_TIMEOUT`` seconds after its first byte (or after the
  connection opened) → 408 (just closed when nothing was sent yet),
- a request the parser cannot read → 400,

each answered in the JSON error shape with ``Connection: close``, and the connection
closed without parsing further (what still arrives for up to ``LINGER`` seconds is
read and dropped, so the client sees the answer rather than a reset). Bodies are
limited in ASGI (:mod:`.limits`), where the route is known; a 413 lingers the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger(__name__)

MAX_URL_BYTES = 64 * 1024
MAX_HEADER_BYTES = 64 * 1024
HEAD_TIMEOUT = 10.0
LINGER = 2.0


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_bytes(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response in the error envelope that closes the connection."""
    body = json.dumps(
        {"error": {"code": "bad_request", "message": message, "details": None}}
    ).encode()
    head = (
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n"
    )
    return STATUS_LINE[status] + head + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    head_timeout = HEAD_TIMEOUT
    max_url_bytes = MAX_URL_BYTES
    max_header_bytes = MAX_HEADER_BYTES

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._awaiting_head = True
        self._head_bytes = 0  # bytes of the current head received so far
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_begun = False  # a byte of the current request has arrived
        self._refused = False
        self.url = b""

    # --- connection events ------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if self._awaiting_head:
            self._start_head_timer()
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
            if self._awaiting_head and self._head_bytes - len(self.url) > self.max_header_bytes:
                # Still no end of head: everything so far is request line and headers.
                raise _Refused(431, "request headers too large")
        except _Refused as limit:
            self._refuse(limit.status, limit.message)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self._stop_head_timer()
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refused):
                self._refuse(cause.status, cause.message)
            else:
                self._refuse(400, "invalid HTTP request")

    # --- parser callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # The next request on a kept-alive connection may begin inside the chunk that
        # ended the last one: its clock starts here, not at the next chunk.
        self._awaiting_head = True
        self._head_begun = True
        self._start_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.max_url_bytes:
            raise _Refused(414, f"request URL longer than {self.max_url_bytes} bytes")

    def on_headers_complete(self) -> None:
        # The last chunk may have held both the end of a huge head and body bytes.
        size = sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_header_bytes:
            raise _Refused(431, "request headers too large")
        self._awaiting_head = False
        self._head_begun = False
        self._head_bytes = 0
        self._stop_head_timer()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.transport is self.transport:
            # uvicorn closes after a "Connection: close" answer (a 413, say) even while
            # the body is still arriving; that close must linger too.
            self.cycle.transport = _CycleTransport(self)  # type: ignore[assignment]

    # --- helpers ----------------------------------------------------------------------

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            # The previous request is still being answered; this head waits behind it.
            self._start_head_timer()
            return
        if self._head_begun:
            self._refuse(408, f"request head not complete within {self.head_timeout:g} s")
        else:
            self._refused = True
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        self._refused = True
        self._stop_head_timer()
        log.debug("refused request from %s: %d %s", self.client, status, message)
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an answer is already under way: no second one
            return
        self.transport.write(error_bytes(status, message))
        self.linger()

    def linger(self) -> None:
        """Lingering close: closing with unread input makes the kernel send a reset,
        which can destroy the answer before the client reads it. So send FIN after
        the answer, drop what still arrives (data_received ignores it) and close when
        the client does, or after LINGER seconds at the latest."""
        self._refused = True
        self._stop_head_timer()
        if self.transport.is_closing() or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.flow.resume_reading()  # paused while the body queued up; drain it now
        self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)


class _CycleTransport:
    """The transport as one request's cycle sees it: closing it while that request's
    body is still arriving lingers instead of resetting."""

    def __init__(self, protocol: LimitedHttpToolsProtocol) -> None:
        self._protocol = protocol
        self._cycle = protocol.cycle

    def write(self, data: bytes) -> None:
        self._protocol.transport.write(data)

    def is_closing(self) -> bool:
        return self._protocol.transport.is_closing()

    def close(self) -> None:
        if self._cycle.more_body:
            self._protocol.linger()
        else:
            self._protocol.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._protocol.transport, name)
