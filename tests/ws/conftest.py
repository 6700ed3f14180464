"""Fixtures for the WebSocket door: a real uvicorn server on 127.0.0.1:0 (started by
``run_servers`` over the session runtime), a JSON-speaking test client built on the
``websockets`` library, and fresh rooms (new manga rows) so tests never share history."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mangahub.app import Runtime
from mangahub.chat.config import ChatConfig
from mangahub.http.app import create_app
from mangahub.http.routes.ws import close_chat
from mangahub.servers import run_servers
from mangahub.storage.models import Manga

Address = tuple[str, int]


class WsClient:
    """One test connection that sends and receives JSON objects."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.auth_ok: dict[str, Any] | None = None
        """The server's ``auth_ok``, when ``open_client`` authenticated by header/query."""
        self._unread: list[dict[str, Any]] = []

    async def send(self, message: Mapping[str, Any] | str | bytes) -> None:
        if isinstance(message, str | bytes):
            await self.conn.send(message)
        else:
            await self.conn.send(orjson.dumps(message).decode())

    def unread(self, message: dict[str, Any]) -> None:
        """Put ``message`` back: the next ``recv`` returns it."""
        self._unread.insert(0, message)

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        if self._unread:
            return self._unread.pop(0)
        async with asyncio.timeout(timeout):
            raw = await self.conn.recv()
        message = orjson.loads(raw)
        assert isinstance(message, dict)
        return message

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next message of ``kind``, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.recv(timeout)
                if message["type"] == kind:
                    return message

    async def recv_until(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.recv(timeout)
                if predicate(message):
                    return message

    async def join(self, room_id: int) -> dict[str, Any]:
        """Join and return the history message (presence follows it)."""
        await self.send({"type": "join", "room_id": room_id})
        history = await self.recv()
        assert history["type"] == "history", history
        return history

    async def chat(self, room_id: int, content: str) -> None:
        await self.send({"type": "chat", "room_id": room_id, "content": content})

    async def error(self, timeout: float = 5.0) -> dict[str, Any]:
        return await self.recv_type("error", timeout)

    async def roundtrip(self) -> None:
        """Ping and wait for the pong: everything sent before has been handled."""
        await self.send({"type": "ping"})
        await self.recv_type("pong")

    async def expect_silence(self, wait: float = 0.3) -> None:
        try:
            message = await self.recv(wait)
        except TimeoutError:
            return
        raise AssertionError(f"expected nothing, got {message}")

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes; the close code it sent."""
        async with asyncio.timeout(timeout):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await self.conn.recv()
        return self.conn.close_code

    async def close(self) -> None:
        await self.conn.close()


Connect = Callable[..., Awaitable[WsClient]]


def ws_url(address: Address, query: str = "") -> str:
    host, port = address
    return f"ws://{host}:{port}/ws" + (f"?{query}" if query else "")


async def open_client(
    address: Address, *, token: str | None = None, query: str = "", **kwargs: Any
) -> WsClient:
    """Connect; a token given by header or ``?token=`` is answered with ``auth_ok``
    first, which is kept as ``client.auth_ok`` (anything else is left to be read)."""
    if token:
        kwargs["additional_headers"] = {"Authorization": f"Bearer {token}"}
    conn = await connect(ws_url(address, query), **kwargs)
    client = WsClient(conn)
    if token or "token=" in query:
        first = await client.recv()
        if first["type"] == "auth_ok":
            client.auth_ok = first
        else:
            client.unread(first)
    return client


@pytest.fixture(scope="session")
async def ws_address(runtime: Runtime) -> AsyncIterator[Address]:
    """The API server (REST + /ws) of the session runtime, on an ephemeral port."""
    settings = runtime.settings.model_copy(update={"http_port": 0, "host": "127.0.0.1"})
    async with run_servers(dataclasses.replace(runtime, settings=settings), ["api"]) as running:
        yield running.address("http")


@pytest.fixture
async def ws_connect(ws_address: Address) -> AsyncIterator[Connect]:
    """Open test connections (to the shared server unless given ``address``); all are
    closed at the end of the test."""
    opened: list[WsClient] = []

    async def open_ws(
        token: str | None = None, *, address: Address | None = None, query: str = "", **kw: Any
    ) -> WsClient:
        client = await open_client(address or ws_address, token=token, query=query, **kw)
        opened.append(client)
        return client

    yield open_ws
    for client in opened:
        await client.close()


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handling (pytest owns the process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@contextlib.asynccontextmanager
async def serve_chat(runtime: Runtime, config: ChatConfig) -> AsyncIterator[Address]:
    """A second HTTP app over the same runtime whose chat runs with ``config`` (short
    timers, small queues), served like ``HttpServer`` does."""
    app = create_app(runtime)
    app.state.chat_config = config
    server = _QuietServer(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            lifespan="off",
            log_level="warning",
            access_log=False,
            ws="websockets-sansio",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    try:
        yield str(host), int(port)
    finally:
        await close_chat(app, timeout=2)
        server.should_exit = True
        await task


@pytest.fixture
async def new_room(runtime: Runtime) -> Callable[[], Awaitable[int]]:
    """Create a series that no other test uses: a room with no history."""

    async def create() -> int:
        tag = uuid.uuid4().hex[:10]
        async with runtime.db.session() as session:
            row = Manga(slug=f"ws-test-{tag}", title=f"WS test {tag}", status="ongoing")
            session.add(row)
            await session.flush()
            return int(row.id)

    return create


@pytest.fixture
async def room(new_room: Callable[[], Awaitable[int]]) -> int:
    return await new_room()
