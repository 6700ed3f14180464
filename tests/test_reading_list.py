"""The rules of SPEC "Reading entry" (one entry per reader x series) and the list views
of GET /api/library, on the storage of this run's backend."""

from __future__ import annotations

import uuid
from datetime import date

import httpx
import pytest

from mangahub.app import Runtime
from mangahub.domain.enums import MangaStatus, ReadingStatus
from mangahub.domain.errors import NotFound
from mangahub.services.entry_writes import SeriesFacts, apply
from mangahub.storage.models import Manga
from tests.conftest import MakeUser, UserSession
from tests.test_library import assert_error, new_manga

TODAY = date(2026, 12, 4)
FINISHED_95 = SeriesFacts(total_chapters=95, finished=True)
ONGOING = SeriesFacts(total_chapters=None, finished=False)


async def finished_manga(runtime: Runtime, total: int, title: str | None = None) -> int:
    manga_id = await new_manga(runtime, total_chapters=total)
    async with runtime.db.session() as s:
        manga = await s.get(Manga, manga_id)
        assert manga is not None
        manga.status = MangaStatus.COMPLETED.value
        if title is not None:
            manga.title = title
    return manga_id


async def put_progress(
    client: httpx.AsyncClient, user: UserSession, manga_id: int, chapter: float, **extra: object
) -> dict[str, object]:
    r = await client.put(
        "/api/users/progress",
        json={"manga_id": manga_id, "chapter": chapter, **extra},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


# --- the rules, as a pure function ------------------------------------------------------


def test_a_chapter_write_lists_the_series_as_reading_and_starts_it() -> None:
    entry = apply(None, {"chapter": 3.0}, ONGOING, TODAY)
    assert (entry["status"], entry["chapter"], entry["started_on"]) == ("reading", 3.0, TODAY)


def test_adding_without_a_chapter_plans_to_read() -> None:
    entry = apply(None, {}, ONGOING, TODAY)
    assert (entry["status"], entry["chapter"], entry["started_on"]) == ("plan_to_read", 0, None)


def test_a_chapter_write_keeps_the_entrys_status() -> None:
    held = apply(None, {"status": ReadingStatus.ON_HOLD, "chapter": 5.0}, ONGOING, TODAY)
    assert apply(held, {"chapter": 6.0}, ONGOING, TODAY)["status"] == "on_hold"
    planned = apply(None, {}, ONGOING, TODAY)
    assert apply(planned, {"chapter": 1.0}, ONGOING, TODAY)["status"] == "reading"


def test_reaching_the_last_chapter_of_a_finished_series_completes() -> None:
    reading = apply(None, {"chapter": 90.0}, FINISHED_95, TODAY)
    done = apply(reading, {"chapter": 95.0}, FINISHED_95, TODAY)
    assert (done["status"], done["finished_on"]) == ("completed", TODAY)
    # The same chapter count on a series still publishing completes nothing.
    ongoing = SeriesFacts(total_chapters=95, finished=False)
    assert apply(reading, {"chapter": 95.0}, ongoing, TODAY)["status"] == "reading"
    # An explicit on_hold is respected.
    held = apply(reading, {"chapter": 95.0, "status": "on_hold"}, FINISHED_95, TODAY)
    assert held["status"] == "on_hold"


def test_a_status_change_never_moves_the_chapter_back() -> None:
    entry = apply(None, {"chapter": 40.0}, FINISHED_95, TODAY)
    for status in ("on_hold", "dropped", "plan_to_read", "reading"):
        entry = apply(entry, {"status": status}, FINISHED_95, TODAY)
        assert entry["chapter"] == 40.0
    # Completing moves it to the end, forward.
    done = apply(entry, {"status": "completed"}, FINISHED_95, TODAY)
    assert (done["chapter"], done["finished_on"]) == (95.0, TODAY)


def test_completing_a_reread_counts_it() -> None:
    done = apply(None, {"status": "completed", "chapter": 95.0}, FINISHED_95, date(2025, 1, 1))
    assert done["rereads"] == 0
    again = apply(done, {"rereading": True, "chapter": 1.0}, FINISHED_95, TODAY)
    assert (again["status"], again["rereading"], again["rereads"]) == ("completed", True, 0)
    middle = apply(again, {"chapter": 50.0}, FINISHED_95, TODAY)
    assert middle["rereads"] == 0
    finished = apply(middle, {"chapter": 95.0}, FINISHED_95, TODAY)
    assert (finished["rereads"], finished["rereading"], finished["finished_on"]) == (
        1,
        False,
        TODAY,
    )
    # An explicit "completed" ends a reread too.
    third = apply(finished, {"rereading": True}, FINISHED_95, TODAY)
    assert apply(third, {"status": "completed"}, FINISHED_95, TODAY)["rereads"] == 2


def test_dates_given_are_kept() -> None:
    start = date(2020, 5, 1)
    entry = apply(None, {"chapter": 1.0, "started_on": start}, ONGOING, TODAY)
    assert entry["started_on"] == start
    cleared = apply(entry, {"started_on": None}, ONGOING, TODAY)
    assert cleared["started_on"] is None


# --- the rules through the doors -----------------------------------------------------------


async def test_progress_then_status_then_progress_keeps_one_status(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    manga_id = await new_manga(runtime, total_chapters=100)
    await put_progress(client, user, manga_id, 95, status="completed")
    # A later chapter write without a status does not undo "completed".
    entry = await put_progress(client, user, manga_id, 95)
    assert entry["status"] == "completed"
    r = await client.get(f"/api/library/{manga_id}", headers=user.headers)
    assert r.json()["status"] == "completed"
    r = await client.patch(
        f"/api/library/{manga_id}", json={"status": "on_hold"}, headers=user.headers
    )
    assert (r.json()["status"], r.json()["chapter"]) == ("on_hold", 95)
    r = await client.get(f"/api/users/progress/{manga_id}", headers=user.headers)
    assert r.json()["status"] == "on_hold"


async def test_progress_lists_the_series_and_completion_sets_finished_on(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    manga_id = await finished_manga(runtime, 12)
    entry = await put_progress(client, user, manga_id, 3, volume=1)
    assert (entry["status"], entry["volume"], entry["finished_on"]) == ("reading", 1, None)
    assert entry["started_on"] is not None
    r = await client.get("/api/library", headers=user.headers)
    assert [e["manga_id"] for e in r.json()["data"]] == [manga_id]
    done = await put_progress(client, user, manga_id, 12)
    assert done["status"] == "completed"
    assert done["finished_on"] == done["updated_at"][:10]


async def test_patch_sets_any_field(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    manga_id = await new_manga(runtime)
    r = await client.post("/api/library", json={"manga_id": manga_id}, headers=user.headers)
    added = r.json()
    change = {
        "chapter": 12.5,
        "volume": 2,
        "score": 9,
        "started_on": "2024-02-29",
        "finished_on": "2024-03-10",
        "rereads": 3,
        "rereading": True,
        "notes": "re-read the <b>first</b> arc\nslowly",
    }
    r = await client.patch(f"/api/library/{manga_id}", json=change, headers=user.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in change} == change
    assert body["version"] > added["version"]
    assert body["added_at"] == added["added_at"]
    r = await client.get(f"/api/library/{manga_id}", headers=user.headers)
    assert r.json() == body


async def test_delete_removes_progress_and_score(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    manga_id = await new_manga(runtime)
    await put_progress(client, user, manga_id, 4)
    r = await client.put(f"/api/manga/{manga_id}/rating", json={"score": 7}, headers=user.headers)
    assert r.status_code == 200, r.text
    assert (
        await client.delete(f"/api/library/{manga_id}", headers=user.headers)
    ).status_code == 204
    r = await client.get(f"/api/users/progress/{manga_id}", headers=user.headers)
    assert_error(r, 404, "not_found")
    with pytest.raises(NotFound):
        await runtime.reading_list.get(uuid.UUID(user.id), manga_id)
    assert (await client.get(f"/api/manga/{manga_id}")).json()["average_rating"] is None


# --- list views -------------------------------------------------------------------------


async def test_list_filters_and_sorts(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    tag = uuid.uuid4().hex[:6]
    a = await finished_manga(runtime, 50, f"Alpha {tag}")
    b = await finished_manga(runtime, 50, f"beta {tag}")
    c = await finished_manga(runtime, 50, f"Gamma {tag} 100%_")
    await put_progress(client, user, a, 10)
    await client.post(
        "/api/library", json={"manga_id": b, "status": "on_hold", "score": 9}, headers=user.headers
    )
    await put_progress(client, user, c, 30)
    await client.patch(f"/api/library/{c}", json={"score": 5}, headers=user.headers)

    async def ids(query: str) -> list[int]:
        r = await client.get(f"/api/library?{query}", headers=user.headers)
        assert r.status_code == 200, r.text
        assert all("title" in e["manga"] for e in r.json()["data"])
        return [e["manga_id"] for e in r.json()["data"]]

    assert await ids("") == [c, b, a]  # most recently updated first
    assert await ids("sort_by=added") == [c, b, a]
    assert await ids("sort_by=added&order=asc") == [a, b, c]
    assert await ids("sort_by=title") == [a, b, c]
    assert await ids("sort_by=title&order=desc") == [c, b, a]
    assert await ids("sort_by=score") == [b, c, a]  # unscored last
    assert await ids("sort_by=score&order=asc") == [c, b, a]
    assert await ids("sort_by=progress") == [c, a, b]
    assert await ids("status=on_hold") == [b]
    assert await ids("status=READING") == [c, a]
    assert await ids("sort_by=Title&order=DESC&status=Reading") == [c, a]
    assert await ids(f"q=ALPHA+{tag}") == [a]
    assert await ids("q=100%25_") == [c]  # LIKE wildcards are matched literally
    assert await ids("q=no-such-title-at-all") == []
    for bad in ("sort_by=chapters", "order=up", "status=binge", "q=" + "x" * 201):
        r = await client.get(f"/api/library?{bad}", headers=user.headers)
        assert r.status_code == 422, (bad, r.text)
