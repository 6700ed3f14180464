"""GET, POST /api/library and GET, PATCH, DELETE /api/library/{manga_id}.

Also home of small helpers the other reader-feature tests import (manga to work on,
error-detail fields, timestamp checks, a live bus subscription).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from mangahub.app import Runtime
from mangahub.bus import EventBus, Subscription
from mangahub.domain.enums import MangaStatus
from mangahub.storage.models import Manga
from tests.conftest import MakeUser
from tests.shapes import SUMMARY_FIELDS

UNKNOWN_MANGA = 2_000_000_000


# --- helpers shared with the other reader-feature tests ------------------------------


async def catalog_ids(runtime: Runtime, n: int) -> list[int]:
    """Ids of ``n`` series of the bundled catalog (shared by every test: read-mostly)."""
    async with runtime.db.session() as s:
        ids = list((await s.scalars(select(Manga.id).order_by(Manga.id).limit(n))).all())
    assert len(ids) == n, "the bundled catalog should be seeded"
    return ids


async def new_manga(runtime: Runtime, *, total_chapters: int | None = None) -> int:
    """A private series for tests that assert exact aggregates (ratings, chat rooms)."""
    tag = uuid.uuid4().hex[:12]
    manga = Manga(
        slug=f"test-series-{tag}",
        title=f"Test Series {tag}",
        status=MangaStatus.ONGOING.value,
        total_chapters=total_chapters,
        search_text=f"Test Series {tag}",
    )
    async with runtime.db.session() as s:
        s.add(manga)
    return manga.id


def error_fields(response: httpx.Response) -> set[str]:
    body = response.json()["error"]
    assert body["code"] == "validation_error", body
    return {d["field"] for d in body["details"]}


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def assert_utc_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


async def live_subscription(bus: EventBus, topic: str) -> Subscription:
    """Subscribe and wait until the subscription really receives (Redis SUBSCRIBE is
    asynchronous), so a test can tell "no event" from "not listening yet"."""
    sub = await bus.subscribe(topic)
    probe = {"type": "probe", "id": uuid.uuid4().hex}
    async with asyncio.timeout(5):
        while True:
            await bus.publish(topic, probe)
            try:
                _, event = await asyncio.wait_for(sub.get(), 0.2)
            except TimeoutError:
                continue
            if event == probe:
                break
    while True:  # drop duplicate probes that are still in flight
        try:
            await asyncio.wait_for(sub.get(), 0.1)
        except TimeoutError:
            return sub


# --- tests -------------------------------------------------------------------------


async def test_add_list_update_remove(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)

    r = await client.post("/api/library", json={"manga_id": manga_id}, headers=user.headers)
    assert r.status_code == 201, r.text
    entry = r.json()
    assert {"manga_id", "status", "added_at", "manga"} <= set(entry)
    assert entry["manga_id"] == manga_id
    assert entry["status"] == "plan_to_read"
    assert_utc_iso(entry["added_at"])
    assert SUMMARY_FIELDS <= set(entry["manga"])
    assert entry["manga"]["id"] == manga_id
    assert isinstance(entry["manga"]["genres"], list)

    r = await client.get("/api/library", headers=user.headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert set(page) == {"data", "page", "page_size", "total"}
    assert (page["page"], page["page_size"], page["total"]) == (1, 20, 1)
    assert page["data"] == [entry]

    r = await client.patch(
        f"/api/library/{manga_id}", json={"status": "completed"}, headers=user.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    assert r.json()["added_at"] == entry["added_at"]

    r = await client.delete(f"/api/library/{manga_id}", headers=user.headers)
    assert r.status_code == 204
    assert r.content == b""
    r = await client.get("/api/library", headers=user.headers)
    assert r.json()["total"] == 0
    assert r.json()["data"] == []


async def test_add_with_a_status(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)
    r = await client.post(
        "/api/library", json={"manga_id": manga_id, "status": "reading"}, headers=user.headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "reading"


async def test_list_is_newest_first_and_paginated(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    ids = await catalog_ids(runtime, 5)
    for manga_id in ids:
        r = await client.post("/api/library", json={"manga_id": manga_id}, headers=user.headers)
        assert r.status_code == 201, r.text

    r = await client.get("/api/library?page=1&page_size=2", headers=user.headers)
    first = r.json()
    assert (first["page"], first["page_size"], first["total"]) == (1, 2, 5)
    r = await client.get("/api/library?page=3&page_size=2", headers=user.headers)
    last = r.json()
    assert last["total"] == 5
    r = await client.get("/api/library?page=2&limit=2", headers=user.headers)
    middle = r.json()
    seen = [e["manga_id"] for e in first["data"] + middle["data"] + last["data"]]
    assert seen == ids[::-1]

    r = await client.get("/api/library?page=9&page_size=2", headers=user.headers)
    assert r.json()["data"] == [] and r.json()["total"] == 5


async def test_adding_twice_is_a_conflict(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)
    r = await client.post("/api/library", json={"manga_id": manga_id}, headers=user.headers)
    assert r.status_code == 201
    r = await client.post(
        "/api/library", json={"manga_id": manga_id, "status": "reading"}, headers=user.headers
    )
    assert_error(r, 409, "conflict")
    r = await client.get("/api/library", headers=user.headers)
    assert [e["status"] for e in r.json()["data"]] == ["plan_to_read"]


async def test_concurrent_adds_store_one_entry(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    manga_id = (await catalog_ids(runtime, 3))[-1]
    responses = await asyncio.gather(
        *(
            client.post("/api/library", json={"manga_id": manga_id}, headers=user.headers)
            for _ in range(6)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 5, [r.text for r in responses]


@pytest.mark.parametrize("manga_id", [UNKNOWN_MANGA, 2**40])
async def test_unknown_manga_is_not_found(
    client: httpx.AsyncClient, make_user: MakeUser, manga_id: int
) -> None:
    user = await make_user()
    r = await client.post("/api/library", json={"manga_id": manga_id}, headers=user.headers)
    assert_error(r, 404, "not_found")


async def test_entries_not_in_the_library_are_not_found(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)
    for target in (manga_id, UNKNOWN_MANGA, 2**70, -1):
        r = await client.patch(
            f"/api/library/{target}", json={"status": "dropped"}, headers=user.headers
        )
        assert_error(r, 404, "not_found")
        r = await client.delete(f"/api/library/{target}", headers=user.headers)
        assert_error(r, 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"manga_id": 1, "status": "reading_hard"}, "status"),
        ({"manga_id": 1, "status": "READING"}, "status"),
        ({"manga_id": 1, "status": None}, "status"),
        ({"manga_id": 0}, "manga_id"),
        ({"manga_id": "abc"}, "manga_id"),
        ({"status": "reading"}, "manga_id"),
    ],
)
async def test_bad_add_bodies_name_the_field(
    client: httpx.AsyncClient, make_user: MakeUser, body: dict[str, object], field: str
) -> None:
    user = await make_user()
    r = await client.post("/api/library", json=body, headers=user.headers)
    assert r.status_code == 422, r.text
    assert field in error_fields(r)


async def test_bad_update_body_names_the_field(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)
    await client.post("/api/library", json={"manga_id": manga_id}, headers=user.headers)
    for body, field in (
        ({"status": "finished"}, "status"),
        ({"status": 3}, "status"),
        ({"status": None}, "status"),
        ({"chapter": -1}, "chapter"),
        ({"volume": 1.5}, "volume"),
        ({"score": 11}, "score"),
        ({"score": 0}, "score"),
        ({"rereads": -1}, "rereads"),
        ({"rereading": None}, "rereading"),
        ({"notes": "x" * 10_001}, "notes"),
        ({"started_on": "2026-13-01"}, "started_on"),
        ({"finished_on": "yesterday"}, "finished_on"),
    ):
        r = await client.patch(f"/api/library/{manga_id}", json=body, headers=user.headers)
        assert r.status_code == 422, (body, r.text)
        assert field in error_fields(r), body
    r = await client.patch(f"/api/library/{manga_id}", json={}, headers=user.headers)
    assert r.status_code == 422, r.text


async def test_page_size_is_bounded(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    for query in ("page_size=101", "page_size=0", "page=0", "limit=500"):
        r = await client.get(f"/api/library?{query}", headers=user.headers)
        assert r.status_code == 422, (query, r.text)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/library"),
        ("POST", "/api/library"),
        ("GET", "/api/library/1"),
        ("PATCH", "/api/library/1"),
        ("DELETE", "/api/library/1"),
    ],
)
async def test_requires_a_token(client: httpx.AsyncClient, method: str, path: str) -> None:
    r = await client.request(method, path, json={"manga_id": 1, "status": "reading"})
    assert_error(r, 401, "unauthorized")
    r = await client.request(
        method, path, json={"manga_id": 1}, headers={"Authorization": "Bearer not-a-jwt"}
    )
    assert_error(r, 401, "unauthorized")


async def test_service_add_and_remove_directly(make_user: MakeUser, runtime: Runtime) -> None:
    """The service is what every door calls: it answers the same way without HTTP."""
    user = await make_user()
    user_id = uuid.UUID(user.id)
    (manga_id,) = await catalog_ids(runtime, 1)
    entry = await runtime.reading_list.add(user_id, manga_id)
    entries, total = await runtime.reading_list.list(user_id, page=1, page_size=10)
    assert total == 1 and entries == [entry]
    await runtime.reading_list.remove(user_id, manga_id)
    assert await runtime.reading_list.list(user_id, page=1, page_size=10) == ([], 0)
