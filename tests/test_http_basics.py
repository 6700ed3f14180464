"""The HTTP door's shared behaviour: envelope, health, metrics, docs, path tolerance."""

from __future__ import annotations

import dataclasses

import httpx
import redis.asyncio as aioredis

from mangahub.app import Runtime
from mangahub.cache import RedisCache
from mangahub.http.app import create_app
from mangahub.storage.database import Database
from tests.live_server import free_port


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_readyz_reports_each_dependency(client: httpx.AsyncClient, runtime: Runtime) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    expected = {"database": "ok"} | ({"redis": "ok"} if runtime.redis is not None else {})
    assert r.json() == {"status": "ok", "checks": expected}


async def _readyz(runtime: Runtime) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        return await c.get("/readyz")


async def test_readyz_is_unavailable_without_the_database(runtime: Runtime) -> None:
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere")
    try:
        r = await _readyz(dataclasses.replace(runtime, db=db))
    finally:
        await db.close()
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable"
    assert r.json()["checks"]["database"].startswith("error")


async def test_readyz_is_degraded_but_ready_without_redis(runtime: Runtime) -> None:
    # Nothing listens on the port: the process serves on without Redis, so it stays ready.
    gone = aioredis.Redis(port=free_port(), socket_connect_timeout=1)
    try:
        r = await _readyz(
            dataclasses.replace(runtime, redis=gone, cache=RedisCache(gone, "readyz-test"))
        )
    finally:
        await gone.aclose()
    assert r.status_code == 200
    assert r.json()["status"] == "degraded"
    assert r.json()["checks"]["database"] == "ok"
    assert r.json()["checks"]["redis"].startswith("error")


async def test_metrics_count_requests_by_handler(client: httpx.AsyncClient) -> None:
    def count(text: str) -> float:
        for line in text.splitlines():
            if (
                line.startswith("mangahub_http_requests_total{")
                and 'status="404"' in line
                and 'handler="get_manga"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = count((await client.get("/metrics")).text)
    assert (await client.get("/api/manga/999999999")).status_code == 404
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert count(r.text) == before + 1


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in ("/api/auth/login", "/api/manga", "/api/library", "/api/users/progress"):
        assert path in spec["paths"], path
    assert not any(p.startswith("/auth/") for p in spec["paths"])  # legacy twins are hidden
    assert (await client.get("/docs")).status_code == 200


async def test_unknown_path_uses_the_error_envelope(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/no-such-thing")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_wrong_method_uses_the_error_envelope(client: httpx.AsyncClient) -> None:
    r = await client.delete("/healthz")
    assert r.status_code == 405
    assert set(r.json()["error"]) == {"code", "message", "details"}


async def test_malformed_json_is_a_bad_request(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/auth/login", content=b'{"username": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_request"


async def test_trailing_slash_is_tolerated(client: httpx.AsyncClient) -> None:
    plain = await client.get("/api/manga", params={"q": "one"})
    slashed = await client.get("/api/manga/", params={"q": "one"})
    assert slashed.status_code == 200
    assert slashed.json() == plain.json()


async def test_page_size_limits(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/manga", params={"page_size": 100})).status_code == 200
    for bad in ({"page_size": 101}, {"page_size": 0}, {"page": 0}, {"limit": 500}):
        r = await client.get("/api/manga", params=bad)
        assert r.status_code == 422, bad
        assert r.json()["error"]["code"] == "validation_error"
        assert r.json()["error"]["details"][0]["field"]
    r = await client.get("/api/manga", params={"limit": 7})
    assert r.status_code == 200 and r.json()["page_size"] == 7 and len(r.json()["data"]) == 7
