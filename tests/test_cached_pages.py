"""Listing, search and genre answers served by exact URL from the catalog read model:
the same bytes as a fresh answer, dropped by any catalog change, never kept when a
change overtook them, never kept when not a 200."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from mangahub.app import Runtime
from mangahub.bus import MemoryBus
from mangahub.http.middleware import CachedPagesMiddleware
from mangahub.readmodels import CATALOG_CHANGED, CatalogReadModel, catalog_changed
from tests.conftest import UserSession

LISTING = ("/api/manga", b"page=1&page_size=5")


def requests_counted(app: FastAPI, handler: str) -> float:
    registry: CollectorRegistry = app.state.metrics_registry
    value = registry.get_sample_value(
        "mangahub_http_requests_total", {"method": "GET", "handler": handler, "status": "200"}
    )
    return value or 0.0


async def test_a_kept_answer_is_the_fresh_one(
    client: httpx.AsyncClient, runtime: Runtime, app: FastAPI
) -> None:
    runtime.catalog_reads.clear()
    fresh = await client.get("/api/manga", params={"page": 1, "page_size": 5})
    assert runtime.catalog_reads.cached_response(LISTING) is not None
    counted = requests_counted(app, "list_manga")
    kept = await client.get(
        "/api/manga", params={"page": 1, "page_size": 5}, headers={"X-Request-ID": "kept-1"}
    )
    assert (fresh.status_code, kept.status_code) == (200, 200)
    assert kept.content == fresh.content
    assert kept.headers["content-type"] == fresh.headers["content-type"] == "application/json"
    assert kept.headers["x-request-id"] == "kept-1"
    assert requests_counted(app, "list_manga") == counted + 1  # counted as its handler


async def test_a_catalog_change_is_in_the_next_answer(
    client: httpx.AsyncClient, admin: UserSession
) -> None:
    word = f"Kept{uuid.uuid4().hex[:8]}"
    r = await client.post(
        "/api/manga", json={"title": f"{word} One", "status": "ongoing"}, headers=admin.headers
    )
    manga_id = r.json()["id"]
    params = {"q": word}

    async def titles() -> list[str]:
        r = await client.get("/api/manga/advanced-search", params=params)
        assert r.status_code == 200, r.text
        return [item["title"] for item in r.json()["data"]]

    assert await titles() == [f"{word} One"]
    assert await titles() == [f"{word} One"]  # kept now
    r = await client.patch(
        f"/api/manga/{manga_id}", json={"title": f"{word} Two"}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    assert await titles() == [f"{word} Two"]


async def test_errors_are_not_kept(client: httpx.AsyncClient, runtime: Runtime) -> None:
    r = await client.get("/api/manga", params={"page": 0})
    assert r.status_code == 422
    assert runtime.catalog_reads.cached_response(("/api/manga", b"page=0")) is None


async def test_an_answer_a_change_overtook_is_not_kept(runtime: Runtime) -> None:
    bus = MemoryBus()
    reads = CatalogReadModel(runtime.db, bus)
    await reads.start()
    change = True

    async def listing(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = SimpleNamespace(name="list_manga")
        if change:  # committed while this answer was being produced
            await bus.publish(CATALOG_CHANGED, catalog_changed())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})

    middleware = CachedPagesMiddleware(listing, reads)
    scope = {"type": "http", "method": "GET", "path": LISTING[0], "query_string": LISTING[1]}

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    async def send(_message: object) -> None:
        return None

    await middleware(dict(scope), receive, send)
    assert reads.cached_response(LISTING) is None
    change = False
    await middleware(dict(scope), receive, send)
    assert reads.cached_response(LISTING) is not None
