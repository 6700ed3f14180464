"""SPEC "Limits" on the HTTP door, measured with raw sockets against a served app:
body, header, URL and head-time limits, control characters in text, keep-alive."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from mangahub.app import Runtime
from mangahub.http.errors import KeepAliveApp, install_error_handlers
from mangahub.http.limits import BodyLimitMiddleware
from mangahub.http.protocol import LimitedHttpToolsProtocol
from mangahub.servers import HttpServer, run_servers
from tests.conftest import MakeUser

Address = tuple[str, int]


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Conn:
    """One raw HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, timeout: float = 10) -> Answer:
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(status, headers, body)

    async def closed(self, timeout: float = 5) -> bool:
        """Whether the server closed the connection (EOF or reset) within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                return await self.reader.read(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        head = [f"{method} {target} HTTP/1.1", "Host: test"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body)}")
        await self.send(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        return await self.answer()

    def close(self) -> None:
        self.writer.close()


async def connect(address: Address) -> Conn:
    reader, writer = await asyncio.open_connection(*address)
    return Conn(reader, writer)


@pytest.fixture(scope="module")
async def http_address(runtime: Runtime) -> AsyncIterator[Address]:
    settings = runtime.settings.model_copy(update={"http_port": 0, "host": "127.0.0.1"})
    async with run_servers(dataclasses.replace(runtime, settings=settings), ["api"]) as running:
        yield running.address("http")


def _envelope(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status, answer
    assert answer.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == code, error
    return error


# --- control characters -----------------------------------------------------------------


async def test_nul_and_controls_in_text_are_validation_errors_on_one_connection(
    http_address: Address, make_user: MakeUser
) -> None:
    user = await make_user()
    auth = {"Authorization": f"Bearer {user.access_token}"}
    conn = await connect(http_address)
    try:
        login = json.dumps({"username": "bob\u0000by", "password": "whatever-pass"}).encode()
        answer = await conn.request(
            "POST", "/api/auth/login", login, {"Content-Type": "application/json"}
        )
        _envelope(answer, 422, "validation_error")
        for target in (
            "/api/manga?q=one%00piece",
            "/api/manga/search?q=%1b%5b31m",
            "/api/manga/advanced-search?q=one%00",
            "/api/manga/advanced-search?genres=act%00ion",
            "/api/manga/federated?q=one%00piece&sources=local",
        ):
            _envelope(await conn.request("GET", target), 422, "validation_error")
        progress = json.dumps({"manga_id": 1, "chapter": 1, "status": "reading"}).encode()
        answer = await conn.request(
            "PUT",
            "/api/users/progress",
            progress,
            {**auth, "Content-Type": "application/json", "X-Device": "tv\x9b2J"},
        )
        error = _envelope(answer, 422, "validation_error")
        assert error["details"][0]["field"] == "device"
        # Every refusal above left the keep-alive connection usable.
        assert (await conn.request("GET", "/healthz")).status == 200
    finally:
        conn.close()


async def test_free_text_keeps_line_feeds_and_tabs_but_no_other_control(
    http_address: Address, make_user: MakeUser
) -> None:
    user = await make_user()
    headers = {"Authorization": f"Bearer {user.access_token}", "Content-Type": "application/json"}
    conn = await connect(http_address)
    try:
        kept = json.dumps({"content": "line one\n\tline two"}).encode()
        answer = await conn.request("POST", "/api/manga/1/comments", kept, headers)
        assert answer.status == 201, answer
        assert answer.json()["content"] == "line one\n\tline two"
        for bad in ("bell\u0007", "nul\u0000", "carriage\rreturn", "esc\u001b[31m"):
            body = json.dumps({"content": bad}).encode()
            answer = await conn.request("POST", "/api/manga/1/comments", body, headers)
            _envelope(answer, 422, "validation_error")
    finally:
        conn.close()


# --- body, header, URL limits --------------------------------------------------------


async def test_declared_body_over_1_mib_is_413_before_the_body_is_sent(
    http_address: Address,
) -> None:
    conn = await connect(http_address)
    try:
        # Only the head: the answer must come without the server waiting for 50 MB.
        await conn.send(
            b"POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 52428800\r\n\r\n"
        )
        answer = await conn.answer(timeout=5)
        error = _envelope(answer, 413, "bad_request")
        assert error["details"] == {"limit": 1024 * 1024}
        assert answer.headers["connection"] == "close"
        assert await conn.closed()
    finally:
        conn.close()


async def test_client_sending_a_whole_large_body_reads_the_413_not_a_reset(
    http_address: Address,
) -> None:
    host, port = http_address
    body = b'{"username": "a", "password": "' + b"x" * (8 * 1024 * 1024) + b'"}'
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client:
        r = await client.post(
            "/api/auth/login", content=body, headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 413, r.text
    assert r.json()["error"]["details"] == {"limit": 1024 * 1024}


async def test_streamed_body_is_cut_off_at_the_limit(http_address: Address) -> None:
    conn = await connect(http_address)
    try:
        await conn.send(
            b"POST /api/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 65536
        framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        for _ in range(17):  # 1 MiB + 64 KiB, never terminated
            await conn.send(framed)
        answer = await conn.answer(timeout=5)
        _envelope(answer, 413, "bad_request")
        assert answer.headers["connection"] == "close"
        assert await conn.closed()
    finally:
        conn.close()


async def test_body_under_the_limit_is_read(http_address: Address) -> None:
    conn = await connect(http_address)
    try:
        padding = "p" * (900 * 1024)
        body = json.dumps({"username": "nobody", "password": "x", "pad": padding}).encode()
        answer = await conn.request(
            "POST", "/api/auth/login", body, {"Content-Type": "application/json"}
        )
        assert answer.status == 401, answer  # read and parsed; wrong credentials
    finally:
        conn.close()


async def test_trickled_headers_are_answered_431_once_past_64_kib(http_address: Address) -> None:
    conn = await connect(http_address)
    try:
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        filler = b"X-Filler: " + b"a" * 8000 + b"\r\n"
        for _ in range(256):  # 2 MB of headers, never finished
            await conn.send(filler)
        # Answered (not reset) although the client was still sending when refused.
        _envelope(await conn.answer(timeout=5), 431, "bad_request")
        assert await conn.closed()
    finally:
        conn.close()


async def test_headers_over_64_kib_in_one_write_are_431(http_address: Address) -> None:
    conn = await connect(http_address)
    try:
        big = b"X-Filler: " + b"a" * (70 * 1024) + b"\r\n"
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + big + b"\r\n")
        answer = await conn.answer(timeout=5)
        _envelope(answer, 431, "bad_request")
        assert await conn.closed()
    finally:
        conn.close()


async def test_query_string_over_64_kib_gets_the_error_envelope(http_address: Address) -> None:
    conn = await connect(http_address)
    try:
        target = "/api/manga?q=" + "a" * (65 * 1024)
        await conn.send(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        answer = await conn.answer(timeout=5)
        _envelope(answer, 414, "bad_request")
        assert await conn.closed()
    finally:
        conn.close()


async def test_unparseable_request_gets_the_error_envelope(http_address: Address) -> None:
    conn = await connect(http_address)
    try:
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost t\r\n\r\n")
        _envelope(await conn.answer(timeout=5), 400, "bad_request")
    finally:
        conn.close()


# --- head timeout -------------------------------------------------------------------


@pytest.fixture
def short_head_timeout(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(LimitedHttpToolsProtocol, "head_timeout", 0.5)
    return 0.5


async def test_unfinished_head_is_answered_408_and_closed(
    http_address: Address, short_head_timeout: float
) -> None:
    conn = await connect(http_address)
    try:
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # never finished
        await asyncio.sleep(short_head_timeout / 2)
        await conn.send(b"X-Slow: 1\r\n")  # trickling bytes do not restart the clock
        answer = await conn.answer(timeout=short_head_timeout * 6)
        _envelope(answer, 408, "bad_request")
        assert await conn.closed()
    finally:
        conn.close()


async def test_unfinished_second_request_on_a_kept_alive_connection_is_408(
    http_address: Address, short_head_timeout: float
) -> None:
    conn = await connect(http_address)
    try:
        # One write: a whole request, then the start of another that never ends.
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\n")
        assert (await conn.answer()).status == 200
        _envelope(await conn.answer(timeout=short_head_timeout * 6), 408, "bad_request")
        assert await conn.closed()
    finally:
        conn.close()


async def test_silent_connection_is_closed_after_the_head_timeout(
    http_address: Address, short_head_timeout: float
) -> None:
    conn = await connect(http_address)
    try:
        assert await conn.closed(timeout=short_head_timeout * 6)
    finally:
        conn.close()


async def test_slow_request_is_not_cut_by_the_head_timeout(
    runtime: Runtime, short_head_timeout: float
) -> None:
    app = KeepAliveApp()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(short_head_timeout * 3)
        return {"status": "ok"}

    async with _served(runtime, app) as address:
        conn = await connect(address)
        try:
            assert (await conn.request("GET", "/slow")).status == 200
            assert (await conn.request("GET", "/slow")).status == 200
        finally:
            conn.close()


# --- keep-alive after an unexpected error ----------------------------------------------


class _ServedApp:
    def __init__(self, runtime: Runtime, app: FastAPI) -> None:
        self.server = HttpServer(runtime, "127.0.0.1", 0, app=app, name="test")

    async def __aenter__(self) -> Address:
        await self.server.start()
        return self.server.address

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop(2)


def _served(runtime: Runtime, app: FastAPI) -> _ServedApp:
    return _ServedApp(runtime, app)


async def test_unexpected_error_is_500_in_the_envelope_and_keeps_the_connection(
    runtime: Runtime,
) -> None:
    app = KeepAliveApp()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("broken on purpose")

    async with _served(runtime, app) as address:
        conn = await connect(address)
        try:
            for _ in range(2):
                _envelope(await conn.request("GET", "/boom"), 500, "internal")
            assert (await conn.request("GET", "/openapi.json")).status == 200
        finally:
            conn.close()


# --- WebSocket ------------------------------------------------------------------------


async def test_websocket_frames_over_chat_limit_are_refused(http_address: Address) -> None:
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed

    host, port = http_address
    async with ws_connect(f"ws://{host}:{port}/ws", max_size=None) as ws:
        await ws.send("x" * (64 * 1024 + 1024))
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
        assert ws.close_code == 1009  # message too big


def test_imports_get_the_larger_body_limit() -> None:
    limits = BodyLimitMiddleware(FastAPI())
    assert limits.limit_for("/api/library/import") == 50 * 1024 * 1024
    assert limits.limit_for("/api/library/import/csv") == 50 * 1024 * 1024
    assert limits.limit_for("/api/library/imports") == 1024 * 1024
    assert limits.limit_for("/api/auth/login") == 1024 * 1024
