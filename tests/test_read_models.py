"""The catalog read models: every writer's change is in the next read, on both storage
paths (the cross-process case is tests/deploy/test_read_models_cluster.py)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from mangahub.app import Runtime
from mangahub.bus import MemoryBus
from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaStatus
from mangahub.readmodels import CATALOG_CHANGED, CatalogReadModel, catalog_changed
from mangahub.services.source_sync import SourceSyncService, TrackedSeries
from mangahub.sources.models import SourceChapter
from tests.conftest import MakeUser, UserSession


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def details(client: httpx.AsyncClient, manga_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/manga/{manga_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def titles_found(client: httpx.AsyncClient, word: str) -> list[str]:
    r = await client.get("/api/manga/advanced-search", params={"q": word})
    assert r.status_code == 200, r.text
    return [item["title"] for item in r.json()["data"]]


async def test_admin_edit_and_delete_are_in_the_next_read(
    client: httpx.AsyncClient, admin: UserSession
) -> None:
    word = f"Readmodel{tag()}"
    r = await client.post(
        "/api/manga", json={"title": f"{word} One", "status": "ongoing"}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    manga_id = r.json()["id"]
    assert (await details(client, manga_id))["title"] == f"{word} One"
    assert await titles_found(client, word) == [f"{word} One"]  # both now cached

    r = await client.patch(
        f"/api/manga/{manga_id}", json={"title": f"{word} Two"}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    assert (await details(client, manga_id))["title"] == f"{word} Two"
    assert await titles_found(client, word) == [f"{word} Two"]

    r = await client.delete(f"/api/manga/{manga_id}", headers=admin.headers)
    assert r.status_code == 204, r.text
    assert (await client.get(f"/api/manga/{manga_id}")).status_code == 404
    assert await titles_found(client, word) == []


async def test_a_score_moves_the_cached_average(
    client: httpx.AsyncClient, admin: UserSession, make_user: MakeUser
) -> None:
    r = await client.post(
        "/api/manga", json={"title": f"Rated {tag()}", "status": "ongoing"}, headers=admin.headers
    )
    manga_id = r.json()["id"]
    assert (await details(client, manga_id))["average_rating"] is None
    user = await make_user()
    r = await client.put(f"/api/manga/{manga_id}/rating", json={"score": 8}, headers=user.headers)
    assert r.status_code == 200, r.text
    after = await details(client, manga_id)
    assert (after["average_rating"], after["rating_count"]) == (8.0, 1)


async def test_the_series_in_a_written_entry_follows_edits_and_scores(
    client: httpx.AsyncClient, admin: UserSession, make_user: MakeUser
) -> None:
    """Written entries embed the series summary from the read model: an edit or a
    score is in the next write's answer."""
    r = await client.post(
        "/api/manga", json={"title": f"Entry {tag()}", "status": "ongoing"}, headers=admin.headers
    )
    manga_id = r.json()["id"]
    reader, scorer = await make_user(), await make_user()

    async def progress(chapter: float) -> dict[str, Any]:
        r = await client.put(
            "/api/users/progress",
            json={"manga_id": manga_id, "chapter": chapter},
            headers=reader.headers,
        )
        assert r.status_code == 200, r.text
        manga: dict[str, Any] = r.json()["manga"]
        return manga

    assert (await progress(1))["title"].startswith("Entry ")  # now cached
    r = await client.patch(
        f"/api/manga/{manga_id}",
        json={"title": "Renamed", "total_chapters": 9},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    assert {k: v for k, v in (await progress(2)).items() if k in ("title", "total_chapters")} == {
        "title": "Renamed",
        "total_chapters": 9,
    }
    r = await client.put(f"/api/manga/{manga_id}/rating", json={"score": 6}, headers=scorer.headers)
    assert r.status_code == 200, r.text
    assert (await progress(3))["average_rating"] == 6.0


async def test_an_import_and_a_chapter_check_are_in_the_next_read(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    mangadex_id = str(uuid.uuid4())
    record = SeriesRecord(
        title=f"Imported {tag()}", status=MangaStatus.ONGOING, mangadex_id=mangadex_id
    )
    assert await runtime.catalog.import_series([record]) == 1
    [found] = await runtime.catalog.find_by_source_ids([mangadex_id], [])
    assert (await details(client, found.id))["description"] == ""

    await runtime.catalog.import_series([replace(record, description="New")])
    assert (await details(client, found.id))["description"] == "New"

    chapters = SourceSyncService(runtime.db, runtime.notifications, runtime.bus)
    feed = [
        SourceChapter(
            str(uuid.uuid4()), mangadex_id, 12.0, None, None, "en", datetime.now(UTC), None
        )
    ]
    series = TrackedSeries(found.id, mangadex_id, found.title, None, checked_before=False)
    await chapters.store_chapters(series, feed)
    assert (await details(client, found.id))["total_chapters"] == 12


async def test_a_read_that_straddles_a_change_is_not_kept(runtime: Runtime) -> None:
    """A cold read may have seen the row before a commit whose event arrives while it
    runs: its answer is served once, never cached."""
    bus = MemoryBus()
    model = CatalogReadModel(runtime.db, bus)
    await model.start()
    [manga_id] = [m.id for m in (await runtime.catalog.list_manga(page_size=1))[0]]
    loads = 0
    load = model.load_details

    async def load_then_change(target: int) -> Any:
        nonlocal loads
        loads += 1
        found = await load(target)
        if loads == 1:
            await bus.publish(CATALOG_CHANGED, catalog_changed(target))
        return found

    model.load_details = load_then_change  # type: ignore[method-assign]
    for _ in range(3):
        await model.series(manga_id, "json", lambda d: d.title)
    assert loads == 2  # the straddling read was not kept; the next one was

    await bus.publish(CATALOG_CHANGED, catalog_changed())  # "everything" drops it too
    await model.series(manga_id, "json", lambda d: d.title)
    assert loads == 3


async def test_a_cached_series_is_answered_like_a_fresh_one(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    [manga_id] = [m.id for m in (await runtime.catalog.list_manga(page_size=1))[0]]
    runtime.catalog_reads.clear()
    fresh = await client.get(f"/api/manga/{manga_id}")  # through the route, which caches
    assert runtime.catalog_reads.cached(manga_id, "json") is not None
    cached = await client.get(f"/api/manga/{manga_id}", headers={"X-Request-ID": "abc-123"})
    assert (fresh.status_code, cached.status_code) == (200, 200)
    assert cached.content == fresh.content
    assert cached.headers["content-type"] == fresh.headers["content-type"] == "application/json"
    assert cached.headers["x-request-id"] == "abc-123"
    assert (await client.get(f"/api/manga/{manga_id}/")).content == fresh.content
