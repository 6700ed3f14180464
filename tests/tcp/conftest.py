"""Fixtures for the TCP door: a server on 127.0.0.1:0 over the session runtime, a
line-level test connection, and manga to write progress for."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from sqlalchemy import or_, select

from mangahub.app import Runtime
from mangahub.storage.models import Manga
from mangahub.tcp.server import TcpConfig, TcpServer
from tests.live_server import LiveServer, live_server

Address = tuple[str, int]


class Line:
    """A raw test connection speaking newline-delimited JSON."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, address: Address, *, rcvbuf: int | None = None) -> Line:
        """Connect; ``rcvbuf`` pins a small kernel receive buffer (a slow reader's)."""
        if rcvbuf is None:
            reader, writer = await asyncio.open_connection(*address, limit=1 << 20)
            return cls(reader, writer)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        return cls(reader, writer)

    async def send(self, message: dict[str, Any] | bytes) -> None:
        raw = message if isinstance(message, bytes) else orjson.dumps(message) + b"\n"
        self.writer.write(raw)
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            raw = await self.reader.readline()
        if not raw:
            raise EOFError("connection closed")
        message = orjson.loads(raw)
        assert isinstance(message, dict)
        return message

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next message of ``kind``, skipping others (e.g. pushes)."""
        while True:
            message = await self.recv(timeout)
            if message["type"] == kind:
                return message

    async def auth(self, token: str, device: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "auth", "token": token}
        if device is not None:
            message["device"] = device
        await self.send(message)
        reply = await self.recv()
        assert reply["type"] == "auth_ok", reply
        return reply

    async def update(
        self, message_id: str, manga_id: int, chapter: float, status: str = "reading"
    ) -> None:
        await self.send(
            {
                "type": "progress_update",
                "id": message_id,
                "data": {"manga_id": manga_id, "chapter": chapter, "status": status},
            }
        )

    async def expect_silence(self, wait: float = 0.3) -> None:
        try:
            message = await self.recv(wait)
        except TimeoutError:
            return
        raise AssertionError(f"expected nothing, got {message}")

    async def expect_closed(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            try:
                rest = await self.reader.read()
            except ConnectionResetError:
                return
        assert rest == b"", rest

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


Connect = Callable[..., Awaitable[Line]]


async def start_tcp(runtime: Runtime, **config: Any) -> TcpServer:
    server = TcpServer(runtime, "127.0.0.1", 0, TcpConfig(**config))
    await server.start()
    return server


@pytest.fixture(scope="session")
async def tcp_server(runtime: Runtime) -> AsyncIterator[TcpServer]:
    server = await start_tcp(runtime)
    try:
        yield server
    finally:
        await server.stop(5)


@pytest.fixture
async def connect(tcp_server: TcpServer) -> AsyncIterator[Connect]:
    """Open test connections (to the shared server unless given an address); all are
    closed at the end of the test."""
    opened: list[Line] = []

    async def open_line(address: Address | None = None, *, rcvbuf: int | None = None) -> Line:
        line = await Line.open(address or tcp_server.address, rcvbuf=rcvbuf)
        opened.append(line)
        return line

    yield open_line
    for line in opened:
        await line.close()


@contextlib.asynccontextmanager
async def serve_process(env: dict[str, str], *args: str) -> AsyncIterator[LiveServer]:
    """``live_server`` started and stopped off the event loop, ready once TCP listens."""
    manager = live_server(env, *args, wait_for="tcp", startup_timeout=45)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


@pytest.fixture(scope="session")
async def manga_ids(runtime: Runtime) -> list[int]:
    """Ids of 150 manga taking chapters up to 200 (unknown length or at least 200
    chapters): the seeded catalog's, topped up with test series if needed."""
    wanted = 150
    roomy = or_(Manga.total_chapters.is_(None), Manga.total_chapters >= 200)
    query = select(Manga.id).where(roomy).order_by(Manga.id).limit(wanted)
    async with runtime.db.session() as session:
        ids = list((await session.scalars(query)).all())
        for _ in range(wanted - len(ids)):
            tag = uuid.uuid4().hex[:10]
            row = Manga(slug=f"tcp-test-{tag}", title=f"TCP test {tag}", status="ongoing")
            session.add(row)
            await session.flush()
            ids.append(row.id)
    return ids
