"""What a misbehaving source cannot do to a client: keep a request open forever by
trickling its answer, or make it hold an endless body in memory. A raw HTTP server
over a real socket plays the source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mangahub.sources.http import MAX_RESPONSE_BYTES, RetryPolicy
from mangahub.sources.mangadex import MangaDexClient
from mangahub.sources.models import SourceParseError, SourceUnavailable

Body = Callable[[asyncio.StreamWriter], Awaitable[None]]
ONCE = RetryPolicy(max_attempts=1)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Body], Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(body: Body) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                await body(writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_a_trickled_answer_is_cut_off_at_the_request_timeout(
    serve: Callable[[Body], Awaitable[str]],
) -> None:
    # Each byte arrives well within the timeout, the whole answer far after it.
    async def trickle(writer: asyncio.StreamWriter) -> None:
        body = b'{"result":"ok","data":[],"limit":10,"offset":0,"total":0}' + b" " * 200
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n" % len(body))
        for byte in body:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)

    url = await serve(trickle)
    async with MangaDexClient(url, timeout=0.5, retry=ONCE) as client:
        with pytest.raises(SourceUnavailable, match="after 1 attempt"):
            await client.search("anything", limit=10)


async def test_an_endless_body_is_refused_not_buffered(
    serve: Callable[[Body], Awaitable[str]],
) -> None:
    async def endless(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b" " * 65536
        for _ in range(MAX_RESPONSE_BYTES // len(chunk) + 8):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    url = await serve(endless)
    async with MangaDexClient(url, timeout=30, retry=ONCE) as client:
        with pytest.raises(SourceParseError, match="larger than"):
            await client.search("anything", limit=10)
