"""``/ws``: the WebSocket chat endpoint (SPEC "WebSocket chat"; docs/protocols/websocket.md).

The endpoint is the reader of a connection: it authenticates, registers the client
with the app's :class:`~mangahub.chat.hub.Hub`, then reads frames and hands them to
the hub, answering errors with ``{"type":"error",…}``. Everything the server sends
after authentication goes through the client (straight to the socket while it keeps
up, else through the client's queue and writer task).

Keepalive lives here because it is about reading: after ``ping_interval`` seconds
without a frame from the client the server sends ``{"type":"ping"}``; at
``idle_timeout`` the connection is closed with 1008. (ASGI exposes no protocol-level
ping frames; uvicorn's own keepalive pings run underneath as well.)

Authentication failures are reported in-band rather than as an HTTP 403 on the
handshake, because browsers hide handshake responses: the connection is accepted,
gets ``{"type":"error","code":"unauthorized",…}`` and is closed with 1008. However
the token came (header, ``?token=``, first message), success is confirmed with
``auth_ok`` carrying ``expires_in``: the connection lasts that long unless the client
renews it with another ``auth`` (see ``Hub.renew``); at the end it gets the
``unauthorized`` error "access token expired" and is closed with 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol as SansIOProtocol
from websockets.protocol import State

from mangahub.app import Runtime
from mangahub.chat import protocol
from mangahub.chat.client import Client
from mangahub.chat.config import ChatConfig
from mangahub.chat.hub import Hub
from mangahub.chat.protocol import CloseCode
from mangahub.domain.errors import ErrorCode, MangaHubError, Unauthorized
from mangahub.security.tokens import Principal, TokenCodec

log = logging.getLogger(__name__)

router = APIRouter()


def chat_hub(app: Any) -> Hub:
    """The app's hub, created on first use. Tests and benchmarks may set
    ``app.state.chat_config`` (a :class:`ChatConfig`) before the first connection."""
    hub: Hub | None = getattr(app.state, "chat_hub", None)
    if hub is None:
        runtime: Runtime = app.state.runtime
        config: ChatConfig = getattr(app.state, "chat_config", None) or ChatConfig()
        hub = app.state.chat_hub = Hub(
            runtime.chat, runtime.bus, config, verify=runtime.tokens.verify_renewal
        )
    return hub


async def close_chat(
    app: object, *, code: int = CloseCode.GOING_AWAY, timeout: float = 5.0
) -> None:
    """Close every chat connection of ``app`` (an ASGI app as uvicorn holds it) with
    ``code`` (graceful shutdown); nothing for an app that is not MangaHub's."""
    if getattr(getattr(app, "state", None), "runtime", None) is None:
        return  # not a MangaHub app
    await chat_hub(app).close_all(code, timeout)


class _Socket:
    """The client's Transport over Starlette's WebSocket."""

    __slots__ = ("_server", "_writable", "_ws")

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        # uvicorn's websockets-sansio connection (what HttpServer runs) says whether its
        # transport takes writes now: its ASGI ``send`` is a bound method of the
        # protocol, which holds a ``writable`` event, the sans-I/O connection (``conn``)
        # and the transport. Other servers: always queued.
        server = getattr(websocket._send, "__self__", None)  # noqa: SLF001
        writable = getattr(server, "writable", None)
        self._writable: asyncio.Event | None = (
            writable if isinstance(writable, asyncio.Event) else None
        )
        self._server: Any = (
            server
            if self._writable is not None
            and isinstance(getattr(server, "conn", None), SansIOProtocol)
            and callable(getattr(getattr(server, "transport", None), "write", None))
            else None
        )

    def send_now(self, text: str) -> bool:
        server = self._server
        if server is None:
            return self._step_send(text)
        # What uvicorn's ``send`` of a data frame does, without the two coroutines
        # (Starlette's and uvicorn's) around it: a broadcast does this once per member.
        if not server.writable.is_set() or server.close_sent or server.disconnected:
            return False
        conn: SansIOProtocol = server.conn
        if conn.state is not State.OPEN or conn.writes:
            return False  # closing, or something is waiting to go first
        if conn.extensions:  # compressed per connection
            conn.send_text(text.encode())
            server.transport.write(b"".join(conn.data_to_send()))
        else:
            server.transport.write(_FRAMES.text_frame(text))
        return True

    def _step_send(self, text: str) -> bool:
        # While the transport is not paused, uvicorn's ``send`` of a data frame runs to
        # the end without suspending (its only await is for ``writable``, before it
        # writes), so the coroutine is stepped once here instead of by a task.
        if self._writable is None or not self._writable.is_set():
            return False
        sending = self._ws.send({"type": "websocket.send", "text": text})
        try:
            sending.send(None)
        except StopIteration:
            return True
        sending.close()  # suspended before writing anything: the caller queues the frame
        return False

    async def send_text(self, text: str) -> None:
        # The ASGI message straight away (what ``send_text`` builds).
        await self._ws.send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)


class _FrameCache:
    """The last text frame built. A broadcast hands the same string to every member,
    so it is encoded and framed once, not once per member (a server's frames are not
    masked: the bytes are the same for every connection without extensions)."""

    __slots__ = ("_frame", "_text")

    def __init__(self) -> None:
        self._text: str | None = None
        self._frame = b""

    def text_frame(self, text: str) -> bytes:
        if text is not self._text:
            self._frame = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
            self._text = text
        return self._frame


_FRAMES = _FrameCache()


@router.websocket("/ws")
async def chat_socket(websocket: WebSocket) -> None:
    hub = chat_hub(websocket.app)
    runtime: Runtime = websocket.app.state.runtime
    await websocket.accept()
    if hub.closing:
        await _close(websocket, CloseCode.GOING_AWAY, "server shutting down")
        return
    principal = await _authenticate(websocket, runtime.tokens, hub.config)
    if principal is None:
        return
    try:
        client = await hub.connect(principal.user_id, principal.username, _Socket(websocket))
    except MangaHubError as exc:  # shutting down
        await _refuse(websocket, exc.code, exc.message, CloseCode.GOING_AWAY)
        return
    except Exception:
        log.exception("chat: cannot register a connection")
        await _refuse(websocket, "unavailable", "chat unavailable", CloseCode.INTERNAL)
        return
    try:
        client.expire_in(principal.seconds_left())  # moved by each renewal
        manga_id = websocket.query_params.get("manga_id")
        if manga_id is not None:
            await client.reply_errors(_join_from_query(hub, client, manga_id))
        await _read_loop(websocket, hub, client)
    except Exception:
        log.exception("chat: connection of %s failed", principal.username)
        client.abort(CloseCode.INTERNAL, "internal error")
    finally:
        await hub.disconnect(client)


async def _join_from_query(hub: Hub, client: Client, manga_id: str) -> None:
    await hub.join(client, protocol.parse_room_id(manga_id))


async def _read_loop(websocket: WebSocket, hub: Hub, client: Client) -> None:
    config = hub.config
    loop = asyncio.get_running_loop()
    last_heard = loop.time()
    pinged = False
    while not client.closing:
        deadline = last_heard + (config.idle_timeout if pinged else config.ping_interval)
        try:
            async with asyncio.timeout_at(deadline) as timeout:
                client.watch_read(timeout)  # a close decided elsewhere ends the wait
                message = await websocket.receive()
        except TimeoutError:
            if client.closing:
                break
            if pinged:
                log.info(
                    "chat: %s silent for %.0f s; closing", client.username, config.idle_timeout
                )
                client.close(CloseCode.POLICY, "idle timeout")
                break
            client.offer(protocol.PING_TEXT)
            pinged = True
            continue
        finally:
            client.watch_read(None)
        if message["type"] == "websocket.disconnect":
            break
        last_heard, pinged = loop.time(), False
        raw: str | bytes | None = message.get("text")
        if raw is None:
            raw = message.get("bytes")
        if raw is not None:
            await client.reply_errors(hub.receive(client, raw))


# --- authentication ----------------------------------------------------------------------


async def _authenticate(
    websocket: WebSocket, tokens: TokenCodec, config: ChatConfig
) -> Principal | None:
    """The caller, from the header, ``?token=``, or the first message, confirmed with
    ``auth_ok``; None once the connection has been refused and closed."""
    token = _bearer(websocket.headers.get("authorization")) or websocket.query_params.get("token")
    if token is None:
        token = await _first_message_token(websocket, config)
        if token is None:
            return None
    try:
        principal = tokens.verify(token)
    except Unauthorized as exc:
        await _refuse(websocket, "unauthorized", exc.message)
        return None
    # No writer task exists yet, so sending directly cannot interleave with one.
    with contextlib.suppress(Exception):
        await websocket.send_text(protocol.encode(protocol.auth_ok(principal)))
    return principal


async def _first_message_token(websocket: WebSocket, config: ChatConfig) -> str | None:
    """The token of the ``auth`` message that must come first; None once the
    connection has been refused and closed."""
    try:
        async with asyncio.timeout(config.auth_timeout):
            message = await websocket.receive()
    except TimeoutError:
        await _refuse(websocket, "unauthorized", "no auth message in time")
        return None
    if message["type"] == "websocket.disconnect":
        return None
    raw = message.get("text")
    try:
        parsed = protocol.parse(raw if raw is not None else message.get("bytes") or b"")
    except MangaHubError as exc:
        await _refuse(websocket, exc.code, exc.message)
        return None
    if not isinstance(parsed, protocol.Auth):
        await _refuse(websocket, "unauthorized", "authenticate first: send {type: auth, token}")
        return None
    return parsed.token


def _bearer(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; any other header value is
    passed through so that it is rejected rather than silently ignored."""
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else header


async def _refuse(
    websocket: WebSocket, code: ErrorCode, message: str, close_code: int = CloseCode.POLICY
) -> None:
    with contextlib.suppress(Exception):  # the peer may already be gone
        await websocket.send_text(protocol.encode(protocol.error(code, message)))
    await _close(websocket, close_code, message)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await websocket.close(code, reason[:120])  # a close reason is at most 123 bytes
