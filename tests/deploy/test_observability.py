"""Request ids, JSON logs and the protocol metrics: what an operator's log collector and
Prometheus see."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mangahub.app import Runtime
from mangahub.http.app import create_app
from mangahub.http.middleware import RequestIdMiddleware
from mangahub.logs import JsonFormatter, accept_request_id, request_id
from tests.conftest import Backend, MakeUser
from tests.deploy.conftest import wait_for_listeners
from tests.live_server import LiveServer, free_port, live_server
from tests.tcp.conftest import Line
from tests.udp.conftest import UdpClient
from tests.ws.conftest import open_client

HEX_ID = re.compile(r"[0-9a-f]{32}")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) → value, from a Prometheus text page."""
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return result


def test_request_ids_are_kept_when_well_formed_and_replaced_otherwise() -> None:
    assert accept_request_id("req-42.a:b") == "req-42.a:b"
    for bad in (None, "", "has space", "x" * 129, "line\nbreak", "ünïcode"):
        assert HEX_ID.fullmatch(accept_request_id(bad)), bad


def test_json_lines_carry_the_context_request_id_and_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("mangahub.tests.json")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id.set("rid-1")
    try:
        logger.warning("hello %s", "world", extra={"user_id": "u1", "attempt": 2})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        request_id.reset(token)
        logger.removeHandler(handler)
        logger.propagate = True
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "hello world"
    assert (first["level"], first["logger"], first["request_id"]) == (
        "WARNING",
        "mangahub.tests.json",
        "rid-1",
    )
    assert (first["user_id"], first["attempt"]) == ("u1", 2)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["time"])
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exc"]


async def test_every_log_line_of_a_request_has_its_id(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(request: Request) -> PlainTextResponse:
        logging.getLogger("mangahub.tests.request").warning("inside the request")
        await asyncio.sleep(0)  # and after a task switch
        logging.getLogger("mangahub.tests.request").warning("still inside")
        return PlainTextResponse("ok")

    app = RequestIdMiddleware(Starlette(routes=[Route("/", handler)]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with caplog.at_level(logging.WARNING, logger="mangahub.tests.request"):
            formatter = JsonFormatter()
            r = await client.get("/", headers={"X-Request-ID": "abc-123"})
            lines = [orjson.loads(formatter.format(rec)) for rec in caplog.records]
    assert r.headers["x-request-id"] == "abc-123"
    assert [line["request_id"] for line in lines] == ["abc-123", "abc-123"]
    assert request_id.get() is None  # nothing leaks out of the request


async def test_the_api_echoes_or_creates_request_ids(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "trace-7"})
    assert r.headers["x-request-id"] == "trace-7"
    r = await client.get("/api/manga/999999999", headers={"X-Request-ID": "bad id"})
    assert r.status_code == 404 and HEX_ID.fullmatch(r.headers["x-request-id"])
    first, second = (await client.get("/healthz"), await client.get("/healthz"))
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@dataclass
class JsonServer:
    server: LiveServer
    metrics_port: int


@pytest.fixture(scope="module")
def json_server(backend: Backend) -> Iterator[JsonServer]:
    """``mangahub serve`` (every part) logging JSON, with the separate metrics port."""
    port = free_port()
    env = backend.process_env(
        MANGAHUB_LOG_FORMAT="json",
        MANGAHUB_METRICS_PORT=str(port),
        MANGAHUB_MANGADEX_ENABLED="false",  # the sync part stays offline
        MANGAHUB_ANILIST_ENABLED="false",
    )
    env["MANGAHUB_LOG_LEVEL"] = "INFO"
    with live_server(env, startup_timeout=60) as server:
        wait_for_listeners(server)
        yield JsonServer(server, port)


@pytest.mark.slow
def test_json_log_format_writes_one_object_per_line(json_server: JsonServer) -> None:
    output = json_server.server.output
    logged = [line for line in output if not line.startswith("mangahub ")]
    assert logged, output
    for line in logged:
        entry = orjson.loads(line)
        assert {"time", "level", "logger", "message", "request_id"} <= set(entry), line
    # Listeners are announced once, on stdout; the process's own loggers write JSON.
    assert any(orjson.loads(line)["logger"] == "mangahub.app" for line in logged)


@pytest.mark.slow
async def test_metrics_count_tcp_udp_and_websocket_traffic(
    json_server: JsonServer, make_user: MakeUser
) -> None:
    server = json_server.server
    user = await make_user()

    async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            r = await http.get("/metrics")
        assert r.status_code == 200
        return samples(r.text)

    before = await scrape()
    line = await Line.open(server.addresses["tcp"])
    ws = await open_client(server.addresses["http"], token=user.access_token)
    udp = await UdpClient.open(server.addresses["udp"])
    try:
        await line.auth(user.access_token)
        await line.send({"type": "ping"})
        await line.recv_type("pong")
        await line.update("bad", 999_999_999, 1)  # no such series: an error frame
        assert (await line.recv_type("error"))["code"] == "not_found"
        await ws.roundtrip()
        await udp.subscribe(user.access_token)
        during = await scrape()
    finally:
        await line.close()
        await ws.close()
        udp.close()

    def grew(name: str, by: float = 1, **labels: str) -> bool:
        key = (name, tuple(sorted(labels.items())))
        return during.get(key, 0) - before.get(key, 0) >= by

    assert during[("mangahub_tcp_connections", ())] >= 1
    assert during[("mangahub_ws_connections", ())] >= 1
    assert during[("mangahub_udp_subscribers", ())] >= 1
    assert grew("mangahub_tcp_messages_total", direction="in", type="auth")
    assert grew("mangahub_tcp_messages_total", direction="in", type="ping")
    assert grew("mangahub_tcp_errors_total", code="not_found")
    assert grew("mangahub_ws_messages_total", direction="in", type="ping")
    assert grew("mangahub_udp_datagrams_total", kind="received")
    assert ("mangahub_http_requests_total", ()) not in during  # labelled, never bare
    # The same process metrics on the separate metrics port (for parts without HTTP).
    port = json_server.metrics_port
    text = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    )
    assert ("mangahub_tcp_errors_total", (("code", "not_found"),)) in samples(text.decode())


async def test_an_unhandled_error_still_answers_and_logs_with_the_request_id(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(runtime)

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    # Starlette answers 500, then re-raises for the server to log: let the transport
    # hand back the response instead.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with caplog.at_level(logging.ERROR, logger="mangahub.http.errors"):
            r = await client.get("/boom", headers={"X-Request-ID": "bug-7"})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal"
    assert r.headers["x-request-id"] == "bug-7"
    [record] = [rec for rec in caplog.records if rec.name == "mangahub.http.errors"]
    assert orjson.loads(JsonFormatter().format(record))["request_id"] == "bug-7"
