"""PUT, GET /api/users/progress and GET /api/users/progress/{manga_id} (the progress
view of reading entries); versioning, events and the batch writes of the TCP door."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import httpx
import orjson
import pytest

from mangahub.app import Runtime
from mangahub.domain.enums import ReadingStatus
from mangahub.domain.errors import NotFound, ValidationFailed
from mangahub.domain.schemas import EntryPublic
from mangahub.services.entry_writes import EntryWrite, StoredEntry, _row_chunks, progress_write
from tests.conftest import MakeUser, UserSession
from tests.test_library import (
    UNKNOWN_MANGA,
    assert_error,
    assert_utc_iso,
    catalog_ids,
    error_fields,
    live_subscription,
    new_manga,
)

PROGRESS_FIELDS = {
    "manga_id",
    "status",
    "chapter",
    "volume",
    "score",
    "started_on",
    "finished_on",
    "rereads",
    "rereading",
    "notes",
    "added_at",
    "updated_at",
    "version",
    "device",
    "manga",
}


async def put(
    client: httpx.AsyncClient,
    user: UserSession,
    manga_id: int,
    chapter: float,
    status: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body: dict[str, object] = {"manga_id": manga_id, "chapter": chapter}
    if status is not None:
        body["status"] = status
    return await client.put(
        "/api/users/progress", json=body, headers={**user.headers, **(headers or {})}
    )


async def test_put_returns_the_stored_progress(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)
    r = await put(client, user, manga_id, 12.5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == PROGRESS_FIELDS
    assert body["manga_id"] == manga_id
    assert body["chapter"] == 12.5
    assert body["status"] == "reading"
    assert body["device"] == "http"
    assert body["version"] >= 1
    assert_utc_iso(body["updated_at"])

    r = await client.get(f"/api/users/progress/{manga_id}", headers=user.headers)
    assert r.status_code == 200, r.text
    assert r.json() == body


async def test_device_header_names_the_device(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)
    r = await put(client, user, manga_id, 3, "on_hold", headers={"X-Device": "kobo-clara"})
    assert r.status_code == 200, r.text
    assert (r.json()["device"], r.json()["status"]) == ("kobo-clara", "on_hold")
    r = await put(client, user, manga_id, 3, headers={"X-Device": "x" * 101})
    assert r.status_code == 422, r.text


async def test_one_row_per_manga_and_versions_grow_per_user(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, bob = await make_user(), await make_user()
    first, second = await catalog_ids(runtime, 2)
    versions = []
    for manga_id, chapter in ((first, 1), (second, 4), (first, 2), (first, 2.5)):
        r = await put(client, alice, manga_id, chapter)
        assert r.status_code == 200, r.text
        versions.append(r.json()["version"])
    assert versions == sorted(versions) and len(set(versions)) == 4

    r = await client.get("/api/users/progress", headers=alice.headers)
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    assert r.json()["total"] == 2
    # Most recently written first; the upserted row keeps the last write.
    assert [(p["manga_id"], p["chapter"], p["version"]) for p in rows] == [
        (first, 2.5, versions[3]),
        (second, 4, versions[1]),
    ]
    assert all(set(p) == PROGRESS_FIELDS for p in rows)

    # Another user's counter is their own.
    r = await put(client, bob, first, 1)
    assert r.json()["version"] == 1


async def test_chapter_up_to_the_known_total(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    bounded = await new_manga(runtime, total_chapters=10)
    unbounded = await new_manga(runtime)
    assert (await put(client, user, bounded, 10)).status_code == 200
    # 10.5 is an extra after chapter 10: a series of 10 chapters holds it.
    assert (await put(client, user, bounded, 10.5)).status_code == 200
    r = await put(client, user, bounded, 11)
    assert r.status_code == 422, r.text
    assert error_fields(r) == {"chapter"}
    r = await client.get(f"/api/users/progress/{bounded}", headers=user.headers)
    assert r.json()["chapter"] == 10.5
    assert (await put(client, user, unbounded, 9999.5)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"chapter": -1}, "chapter"),
        ({"chapter": 1e9}, "chapter"),
        ({"chapter": "twelve"}, "chapter"),
        ({"chapter": None}, "chapter"),
        ({}, "chapter"),
        ({"chapter": 1, "status": "binge"}, "status"),
        ({"chapter": 1, "manga_id": 0}, "manga_id"),
        ({"chapter": 1, "manga_id": None}, "manga_id"),
    ],
)
async def test_bad_bodies_name_the_field(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    runtime: Runtime,
    body: dict[str, object],
    field: str,
) -> None:
    user = await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)
    r = await client.put(
        "/api/users/progress", json={"manga_id": manga_id, **body}, headers=user.headers
    )
    assert r.status_code == 422, r.text
    assert field in error_fields(r)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_chapters_are_rejected(
    client: httpx.AsyncClient, make_user: MakeUser, literal: str
) -> None:
    user = await make_user()
    r = await client.put(
        "/api/users/progress",
        content=f'{{"manga_id": 1, "chapter": {literal}}}',
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert "chapter" in error_fields(r)


async def test_unknown_manga_and_missing_progress_are_not_found(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)
    assert_error(await put(client, user, UNKNOWN_MANGA, 1), 404, "not_found")
    for target in (manga_id, UNKNOWN_MANGA, 2**70):
        r = await client.get(f"/api/users/progress/{target}", headers=user.headers)
        assert_error(r, 404, "not_found")
    r = await client.get("/api/users/progress", headers=user.headers)
    assert r.json()["data"] == [] and r.json()["total"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/users/progress"),
        ("GET", "/api/users/progress"),
        ("GET", "/api/users/progress/1"),
    ],
)
async def test_requires_a_token(client: httpx.AsyncClient, method: str, path: str) -> None:
    r = await client.request(method, path, json={"manga_id": 1, "chapter": 1})
    assert_error(r, 401, "unauthorized")


async def test_update_is_published_to_the_users_topic_only(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, bob = await make_user(), await make_user()
    (manga_id,) = await catalog_ids(runtime, 1)
    mine = await live_subscription(runtime.bus, f"progress:{alice.id}")
    theirs = await live_subscription(runtime.bus, f"progress:{bob.id}")
    try:
        r = await put(client, alice, manga_id, 7.5, "reading", headers={"X-Device": "phone"})
        assert r.status_code == 200, r.text
        topic, event = await asyncio.wait_for(mine.get(), 2)
        assert topic == f"progress:{alice.id}"
        assert event["type"] == "progress"
        assert event["data"] == r.json()
        assert set(event["data"]) == PROGRESS_FIELDS
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(theirs.get(), 0.3)
    finally:
        await mine.close()
        await theirs.close()


async def test_rejected_updates_publish_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    sub = await live_subscription(runtime.bus, f"progress:{user.id}")
    try:
        assert (await put(client, user, UNKNOWN_MANGA, 1)).status_code == 404
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sub.get(), 0.3)
    finally:
        await sub.close()


# --- the service, as the TCP door uses it -----------------------------------------------


def tcp_write(
    user_id: uuid.UUID,
    manga_id: int,
    chapter: float,
    status: ReadingStatus | None,
    device: str | None,
    origin: str | None,
) -> EntryWrite:
    return progress_write(user_id, manga_id, chapter, status=status, device=device, origin=origin)


async def write(
    runtime: Runtime,
    user_id: uuid.UUID,
    manga_id: int,
    chapter: float,
    status: ReadingStatus | None,
    device: str | None,
) -> EntryPublic:
    return await runtime.reading_list.set_progress(
        user_id, manga_id, chapter, status=status, device=device
    )


async def test_changed_since_lists_newer_rows_in_version_order(
    make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    user_id = uuid.UUID(user.id)
    a, b, c = await catalog_ids(runtime, 3)
    progress = runtime.reading_list
    v1 = await write(runtime, user_id, a, 1, ReadingStatus.READING, "laptop")
    v2 = await write(runtime, user_id, b, 1, ReadingStatus.READING, "laptop")
    v3 = await write(runtime, user_id, a, 2, ReadingStatus.COMPLETED, "phone")
    await write(runtime, user_id, c, 5, None, None)

    assert [p.version for p in await progress.changed_since(user_id, 0)] == [
        v2.version,
        v3.version,
        v3.version + 1,
    ]
    newer = await progress.changed_since(user_id, v2.version)
    assert [(p.manga_id, p.chapter, p.status, p.device) for p in newer] == [
        (a, 2, ReadingStatus.COMPLETED, "phone"),
        (c, 5, ReadingStatus.READING, None),
    ]
    assert v1.version < v2.version < v3.version
    assert await progress.changed_since(user_id, 10**30) == []


async def test_batch_writes_get_their_own_outcomes(make_user: MakeUser, runtime: Runtime) -> None:
    alice, bob = await make_user(), await make_user()
    a_id, b_id = uuid.UUID(alice.id), uuid.UUID(bob.id)
    bounded = await new_manga(runtime, total_chapters=5)
    (manga_id,) = await catalog_ids(runtime, 1)
    reading = ReadingStatus.READING
    sub = await live_subscription(runtime.bus, f"progress:{alice.id}")
    try:
        outcomes = await runtime.reading_list.store_many(
            [
                tcp_write(a_id, manga_id, 1, reading, "tcp", "session-1"),
                tcp_write(a_id, UNKNOWN_MANGA, 1, reading, "tcp", "session-1"),
                tcp_write(b_id, manga_id, 3, reading, "tcp", None),
                tcp_write(a_id, bounded, 6, reading, "tcp", "session-1"),
                tcp_write(a_id, manga_id, 2, reading, "tcp", "session-1"),
                tcp_write(a_id, manga_id, float("nan"), reading, "tcp", "session-1"),
            ]
        )
        stored1, unknown, bobs_stored, too_far, stored2, nan = outcomes
        assert isinstance(stored1, StoredEntry) and isinstance(stored2, StoredEntry)
        assert isinstance(bobs_stored, StoredEntry) and bobs_stored.entry.version == 1
        ok1, ok2 = stored1.entry, stored2.entry
        # The JSON the event, the ack and the pushes carry is the stored entry's.
        assert stored1 == ok1.model_dump(mode="json")
        assert isinstance(unknown, NotFound)
        assert isinstance(too_far, ValidationFailed)
        assert isinstance(nan, ValidationFailed)
        assert ok2.version == ok1.version + 1
        stored = await runtime.reading_list.get(a_id, manga_id)
        assert (stored.chapter, stored.version) == (2, ok2.version)

        events = [await asyncio.wait_for(sub.get(), 2) for _ in range(2)]
        assert [e["data"]["version"] for _, e in events] == [ok1.version, ok2.version]
        assert all(e["origin"] == "session-1" for _, e in events)
    finally:
        await sub.close()


async def test_a_write_of_an_unknown_user_is_not_found_and_leaves_the_batch_alone(
    make_user: MakeUser, runtime: Runtime
) -> None:
    """Users' counters are reserved for the whole batch at once: one user that does not
    exist (deleted since the token was issued) gets NotFound, and the writes of the
    others around it take their versions in arrival order."""
    alice, bob = [uuid.UUID((await make_user()).id) for _ in range(2)]
    ghost = uuid.uuid4()
    first, second = await catalog_ids(runtime, 2)
    outcomes = await runtime.reading_list.store_many(
        [
            tcp_write(alice, first, 1, None, "tcp", None),
            tcp_write(ghost, first, 1, None, "tcp", None),
            tcp_write(bob, first, 4, None, "tcp", None),
            tcp_write(alice, second, 2, None, "tcp", None),
            tcp_write(ghost, second, 2, None, "tcp", None),
            tcp_write(alice, first, 3, None, "tcp", None),
        ]
    )
    a1, ghost1, b1, a2, ghost2, a3 = outcomes
    for lost in (ghost1, ghost2):
        assert isinstance(lost, NotFound) and lost.message == "user not found"
    assert isinstance(a1, StoredEntry) and isinstance(a2, StoredEntry)
    assert isinstance(a3, StoredEntry) and isinstance(b1, StoredEntry)
    assert [o["version"] for o in (a1, a2, a3)] == [1, 2, 3]
    assert b1["version"] == 1
    assert (await runtime.reading_list.get(alice, first)).chapter == 3
    assert await runtime.reading_list.changed_since(ghost, 0) == []


async def test_the_json_of_a_write_is_the_stored_entrys(
    make_user: MakeUser, runtime: Runtime
) -> None:
    """The JSON built for the ack, the pushes and the event is exactly the schema's
    JSON of the entry, whether the entry is new or read back from storage."""
    user = await make_user()
    user_id = uuid.UUID(user.id)
    manga_id = await new_manga(runtime, total_chapters=40)
    service = runtime.reading_list
    changes = {
        "status": ReadingStatus.ON_HOLD,
        "score": 7,
        "notes": "later",
        "started_on": date(2026, 1, 2),
    }
    for batch in (
        [EntryWrite(user_id, manga_id, changes, device="phone")],
        # An entry read back from storage, written twice in one batch.
        [
            EntryWrite(user_id, manga_id, {"chapter": 12.5}, device=None),
            EntryWrite(user_id, manga_id, {"chapter": 40, "finished_on": None}, device="ereader"),
        ],
    ):
        outcomes = await service.store_many(batch)
        for outcome in outcomes:
            assert isinstance(outcome, StoredEntry)
            assert outcome == outcome.entry.model_dump(mode="json")
            # The encoding shared by the TCP ack and pushes is the entry's JSON.
            assert orjson.loads(outcome.encoded) == outcome.entry.model_dump(mode="json")
    stored = await service.get(user_id, manga_id)
    assert outcome == stored.model_dump(mode="json")
    assert (outcome["status"], outcome["chapter"]) == ("on_hold", 40.0)


async def test_a_committed_batch_announced_in_slices_is_the_batch_announced_at_once(
    make_user: MakeUser, runtime: Runtime
) -> None:
    """The TCP group commit announces a committed batch a slice at a time: the
    outcomes and events are those of the whole batch, in order, and only what was
    announced has been published."""
    user = await make_user()
    user_id = uuid.UUID(user.id)
    ids = await catalog_ids(runtime, 3)
    reading = ReadingStatus.READING
    writes = [tcp_write(user_id, ids[i % 3], float(i + 1), reading, "tcp", None) for i in range(5)]
    sub = await live_subscription(runtime.bus, f"progress:{user.id}")
    try:
        committed = await runtime.reading_list.commit_many(writes)
        # Committed before any announcement: another reader sees the last write.
        stored = await runtime.reading_list.get(user_id, ids[4 % 3])
        assert stored.chapter == 5
        first = await committed.announce(0, 2)
        seen = [(await asyncio.wait_for(sub.get(), 2))[1]["data"] for _ in range(2)]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sub.get(), 0.2)  # nothing of the next slice yet
        rest = await committed.announce(2, 5)
        seen += [(await asyncio.wait_for(sub.get(), 2))[1]["data"] for _ in range(3)]
    finally:
        await sub.close()
    outcomes = [*first, *rest]
    assert all(isinstance(o, StoredEntry) for o in outcomes)
    datas = [o for o in outcomes if isinstance(o, StoredEntry)]
    assert seen == datas
    assert [d["chapter"] for d in datas] == [1.0, 2.0, 3.0, 4.0, 5.0]
    versions = [d["version"] for d in datas]
    assert versions == sorted(versions) and len(set(versions)) == 5


async def test_chapters_are_stored_with_two_decimals(make_user: MakeUser, runtime: Runtime) -> None:
    user = await make_user()
    user_id = uuid.UUID(user.id)
    (manga_id,) = await catalog_ids(runtime, 1)
    written = await write(runtime, user_id, manga_id, 7.256, None, None)
    stored = await runtime.reading_list.get(user_id, manga_id)
    # What the caller is told is what every later read returns, on both backends.
    assert written.chapter == stored.chapter == 7.26


async def test_a_batch_of_many_statements_stores_what_every_read_returns(
    make_user: MakeUser, runtime: Runtime
) -> None:
    """A batch bigger than one upsert statement, over entries that exist and entries
    that do not: each write's answer is the entry every later read returns, text,
    dates and flags included, and each field a write left alone is kept."""
    users = [uuid.UUID((await make_user()).id) for _ in range(2)]
    ids = await catalog_ids(runtime, 150)
    note = 'a "quoted" note, a \\ backslash, ünïcödé ✓ and\na second line'
    first = [
        EntryWrite(
            users[i % 2],
            manga_id,
            {"notes": note, "rereading": True, "started_on": date(2024, 1, 2), "volume": i},
        )
        for i, manga_id in enumerate(ids[:100])
    ]
    await runtime.reading_list.store_many(first)
    # Chapters of the entries just written, and of 50 series not listed yet.
    second = [
        tcp_write(users[i % 2], m, i % 3 + 0.25, None, "tcp", None) for i, m in enumerate(ids)
    ]
    outcomes = await runtime.reading_list.store_many(second)
    assert [o for o in outcomes if not isinstance(o, StoredEntry)] == []
    for i, (w, outcome) in enumerate(zip(second, outcomes, strict=True)):
        assert isinstance(outcome, StoredEntry)
        stored = await runtime.reading_list.get(w.user_id, w.manga_id)
        assert outcome == stored.model_dump(mode="json")
        assert stored.chapter == i % 3 + 0.25
        listed_before = i < 100
        assert stored.notes == (note if listed_before else "")
        assert stored.rereading is outcome["rereading"] is listed_before
        assert stored.volume == (i if listed_before else 0)
        assert stored.started_on == (date(2024, 1, 2) if listed_before else date.today())


@pytest.mark.parametrize("count", [1, 63, 64, 65, 1000, 1024])
def test_a_batch_is_upserted_in_few_statements_of_few_sizes(count: int) -> None:
    sizes = _row_chunks(count)
    assert sum(sizes) == count
    assert all(size & (size - 1) == 0 for size in sizes)  # powers of two: few statements
    assert len(set(sizes)) <= 7
