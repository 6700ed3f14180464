"""POST /api/library/import and GET /api/library/export over real HTTP (an in-process
server on an ephemeral port), on both storage paths."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from mangahub.app import Runtime
from mangahub.lists import ImportedEntry, parse_list
from mangahub.servers import run_servers
from mangahub.storage.models import Manga, ReadingEntry, User
from tests.conftest import MakeUser, UserSession
from tests.lists.helpers import (
    ANILIST_FIXTURE,
    BILLION_LAUGHS,
    MAL_FIXTURE,
    XXE,
    mal_entry,
    mal_file,
)
from tests.test_library import live_subscription


@pytest.fixture(scope="module")
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    settings = runtime.settings.model_copy(update={"http_port": 0})
    async with run_servers(replace(runtime, settings=settings), ["api"], drain_timeout=5) as srv:
        host, port = srv.address("http")
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=60) as client:
            yield client


async def import_file(
    http: httpx.AsyncClient, user: UserSession, data: bytes, **params: Any
) -> httpx.Response:
    return await http.post("/api/library/import", content=data, params=params, headers=user.headers)


async def stored(runtime: Runtime, user: UserSession) -> dict[int, dict[str, Any]]:
    """The user's entries with their series' ids, by manga id."""
    stmt = (
        select(ReadingEntry, Manga.mal_id, Manga.anilist_id, Manga.title)
        .join(Manga, Manga.id == ReadingEntry.manga_id)
        .where(ReadingEntry.user_id == uuid.UUID(user.id))
    )
    async with runtime.db.session() as s:
        rows = (await s.execute(stmt)).all()
    return {
        e.manga_id: {
            "mal_id": mal_id,
            "anilist_id": anilist_id,
            "title": title,
            "status": e.status,
            "chapter": float(e.chapter),
            "volume": e.volume,
            "score": e.score,
            "started_on": e.started_on,
            "finished_on": e.finished_on,
            "rereads": e.rereads,
            "rereading": e.rereading,
            "notes": e.notes,
            "added_at": e.added_at,
            "updated_at": e.updated_at,
            "device": e.device,
            "version": e.version,
        }
        for e, mal_id, anilist_id, title in rows
    }


async def progress_seq(runtime: Runtime, user: UserSession) -> int:
    async with runtime.db.session() as s:
        seq = await s.scalar(select(User.progress_seq).where(User.id == uuid.UUID(user.id)))
    assert seq is not None
    return seq


def expected(entry: ImportedEntry) -> dict[str, Any]:
    return {
        "status": entry.status.value,
        "chapter": entry.chapter,
        "volume": entry.volume or 0,
        "score": entry.score,
        "started_on": entry.started_on,
        "finished_on": entry.finished_on,
        "rereads": entry.rereads,
        "rereading": entry.rereading,
        "notes": entry.notes or "",
    }


def fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in expected(parse_list(mal_file(mal_entry())).entries[0])}


async def test_mal_fixture_gzipped_every_entry(
    http: httpx.AsyncClient, runtime: Runtime, make_user: MakeUser
) -> None:
    user = await make_user()
    raw = MAL_FIXTURE.read_bytes()
    r = await import_file(http, user, gzip.compress(raw))
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["format"] == "mal"
    assert (report["entries_in_file"], report["imported"], report["updated"]) == (216, 216, 0)
    assert report["skipped"] == []
    rows = await stored(runtime, user)
    assert len(rows) == 216
    by_mal = {row["mal_id"]: row for row in rows.values()}
    for entry in parse_list(raw).entries:
        row = by_mal[entry.series.mal_id]
        assert fields(row) == expected(entry), entry.title
        assert row["device"] == "import"
    # Versions come from the user's counter: unique, and the counter moved past them.
    versions = sorted(row["version"] for row in rows.values())
    assert len(set(versions)) == 216
    assert versions[-1] == await progress_seq(runtime, user)
    # A series the catalog did not have was created from the file's data.
    async with runtime.db.session() as s:
        created = (await s.execute(select(Manga).where(Manga.mal_id == 173231))).scalar_one()
    assert created.title.startswith("Ichiban Tookute, Chikai Aitsu.")
    assert (created.total_chapters, created.last_synced_at) == (45, None)
    # A series the catalog has (by its MAL id) keeps the catalog's title.
    solo_row = by_mal[121496]
    assert (solo_row["status"], solo_row["chapter"], solo_row["score"]) == ("completed", 180.0, 10)
    assert solo_row["finished_on"] == date(2022, 1, 31)


async def test_anilist_fixture_as_multipart_every_entry(
    http: httpx.AsyncClient, runtime: Runtime, make_user: MakeUser
) -> None:
    user = await make_user()
    raw = ANILIST_FIXTURE.read_bytes()
    r = await http.post(
        "/api/library/import",
        files={"file": ("mangaList.json", raw, "application/json")},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["format"] == "anilist"
    assert (report["imported"], report["skipped"]) == (144, [])
    rows = list((await stored(runtime, user)).values())
    assert len(rows) == 144
    for entry in parse_list(raw).entries:
        if entry.series.mal_id is not None:
            match = [r for r in rows if r["mal_id"] == entry.series.mal_id]
        else:
            match = [r for r in rows if r["anilist_id"] == entry.series.anilist_id]
        assert len(match) == 1, entry.title
        assert fields(match[0]) == expected(entry), entry.title
        if entry.updated_at is not None:
            assert match[0]["updated_at"] == entry.updated_at


async def test_json_export_then_import_reproduces_the_list(
    http: httpx.AsyncClient, runtime: Runtime, make_user: MakeUser
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    assert (await import_file(http, alice, ANILIST_FIXTURE.read_bytes())).status_code == 200
    r = await http.get("/api/library/export", params={"format": "json"}, headers=alice.headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert "attachment" in r.headers["content-disposition"]
    assert len(orjson.loads(r.content)["entries"]) == 144
    imported = await import_file(http, bob, r.content)
    assert imported.json()["imported"] == 144, imported.text

    def same(rows: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
        return {m: {k: v for k, v in row.items() if k != "version"} for m, row in rows.items()}

    assert same(await stored(runtime, bob)) == same(await stored(runtime, alice))


async def test_mal_export_then_import_reproduces_the_list(
    http: httpx.AsyncClient, runtime: Runtime, make_user: MakeUser
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    assert (await import_file(http, alice, MAL_FIXTURE.read_bytes())).status_code == 200
    r = await http.get("/api/library/export", params={"format": "mal"}, headers=alice.headers)
    assert r.status_code == 200
    assert r.content.startswith(b'<?xml version="1.0" encoding="UTF-8" ?>\n<myanimelist>')
    assert r.content.count(b"<manga>") == 216
    assert (await import_file(http, bob, r.content)).json()["imported"] == 216
    theirs = {row["mal_id"]: fields(row) for row in (await stored(runtime, alice)).values()}
    mine = {row["mal_id"]: fields(row) for row in (await stored(runtime, bob)).values()}
    assert mine == theirs


async def test_merge_keeps_the_newer_replace_takes_the_file_dry_run_writes_nothing(
    http: httpx.AsyncClient, runtime: Runtime, make_user: MakeUser
) -> None:
    user = await make_user()
    tag = uuid.uuid4().hex[:8]

    def doc(*entries: tuple[str, str, int, str]) -> bytes:
        rows = [
            {
                "manga": {"title": f"{title} {tag}"},
                "status": status,
                "chapter": chapter,
                "updated_at": updated,
            }
            for title, status, chapter, updated in entries
        ]
        return orjson.dumps({"format": "mangahub-list", "version": 1, "entries": rows})

    first = doc(("Alpha", "reading", 5, "2024-01-01T00:00:00+00:00"), ("Beta", "reading", 7, ""))
    r = await import_file(http, user, first)
    assert (r.json()["imported"], r.json()["created_series"]) == (2, 2)
    # Alpha in the file is older than the stored entry: kept; Beta has no date: taken.
    second = doc(("Alpha", "dropped", 1, "2023-01-01T00:00:00+00:00"), ("Beta", "completed", 9, ""))
    r = await import_file(http, user, second)
    report = r.json()
    assert (report["imported"], report["updated"], report["created_series"]) == (0, 1, 0)
    assert report["skipped"] == [{"title": f"Alpha {tag}", "reason": "your entry is newer"}]
    rows = {row["title"]: row for row in (await stored(runtime, user)).values()}
    assert (rows[f"Alpha {tag}"]["chapter"], rows[f"Beta {tag}"]["status"]) == (5.0, "completed")

    before = await stored(runtime, user)
    seq = await progress_seq(runtime, user)
    third = doc(("Gamma", "reading", 1, ""))
    r = await import_file(http, user, third, mode="replace", dry_run="true")
    assert (r.json()["dry_run"], r.json()["imported"], r.json()["removed"]) == (True, 1, 2)
    assert await stored(runtime, user) == before
    assert await progress_seq(runtime, user) == seq
    async with runtime.db.session() as s:
        assert await s.scalar(select(func.count()).where(Manga.title == f"Gamma {tag}")) == 0

    r = await import_file(http, user, third, mode="replace")
    assert (r.json()["imported"], r.json()["removed"]) == (1, 2)
    assert [row["title"] for row in (await stored(runtime, user)).values()] == [f"Gamma {tag}"]


HOSTILE = [
    ("xxe", XXE, 400, "entities"),
    ("billion laughs", BILLION_LAUGHS, 400, "entities"),
    ("truncated gzip", gzip.compress(mal_file(mal_entry()) * 20)[:-30], 400, "truncated"),
    ("wrong root", b"<?xml version='1.0'?><library><manga/></library>", 400, "root element"),
    ("anime list", mal_file(export_type="1"), 422, "anime list"),
    ("bad date", mal_file(mal_entry(), mal_entry(my_start_date="2024-13-40")), 422, "date"),
    ("bad score", mal_file(mal_entry(), mal_entry(my_score="12")), 422, "score"),
    ("not a list", b"%PDF-1.7 hello", 400, "not a list file"),
    ("empty", b"", 400, "send the list file"),
    (
        "too many rereads",
        mal_file(mal_entry(manga_mangadb_id="3"), mal_entry(my_times_read="20000")),
        422,
        "rereads",
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "status", "fragment"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
async def test_hostile_and_broken_files_write_nothing(
    http: httpx.AsyncClient,
    runtime: Runtime,
    make_user: MakeUser,
    name: str,
    data: bytes,
    status: int,
    fragment: str,
) -> None:
    user = await make_user()
    assert (await import_file(http, user, mal_file(mal_entry()))).status_code == 200
    before, seq = await stored(runtime, user), await progress_seq(runtime, user)
    r = await import_file(http, user, data)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == ("bad_request" if status == 400 else "validation_error")
    assert fragment in error["message"], error
    assert await stored(runtime, user) == before
    assert await progress_seq(runtime, user) == seq
    assert (await http.get("/healthz")).status_code == 200


async def test_a_60_mb_file_is_413_and_the_server_keeps_answering(
    http: httpx.AsyncClient, runtime: Runtime, make_user: MakeUser
) -> None:
    user = await make_user()
    big = mal_file(mal_entry() * 1) + b" " * (60 * 1024 * 1024)
    r = await import_file(http, user, big)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "bad_request"
    r = await http.post(
        "/api/library/import", files={"file": ("big.xml", big)}, headers=user.headers
    )
    assert r.status_code == 413
    assert await stored(runtime, user) == {}
    assert (await http.get("/healthz")).status_code == 200


async def test_import_and_export_need_a_token(http: httpx.AsyncClient) -> None:
    assert (await http.post("/api/library/import", content=b"<x/>")).status_code == 401
    assert (await http.get("/api/library/export")).status_code == 401


async def test_one_mal_id_twice_under_two_titles_is_one_series(
    http: httpx.AsyncClient, runtime: Runtime, make_user: MakeUser
) -> None:
    user = await make_user()
    async with runtime.db.session() as s:
        known = (await s.execute(select(Manga).where(Manga.mal_id.is_(None)).limit(1))).scalar_one()
    mal_id = 900_000_000 + int(uuid.uuid4().int % 1_000_000)
    data = mal_file(
        mal_entry(manga_mangadb_id=str(mal_id), manga_title=f"<![CDATA[{known.title}]]>"),
        mal_entry(manga_mangadb_id=str(mal_id), manga_title="<![CDATA[Another name]]>"),
    )
    r = await import_file(http, user, data)
    assert r.status_code == 200, r.text
    assert len(r.json()["skipped"]) + r.json()["imported"] == 2
    async with runtime.db.session() as s:
        holders = (await s.scalars(select(Manga.id).where(Manga.mal_id == mal_id))).all()
    assert len(holders) == 1


async def test_written_entries_are_pushed_after_the_commit(
    http: httpx.AsyncClient, runtime: Runtime, make_user: MakeUser
) -> None:
    user = await make_user()
    sub = await live_subscription(runtime.bus, f"progress:{user.id}")
    try:
        data = mal_file(
            mal_entry(manga_mangadb_id="1", manga_title="<![CDATA[Pushed One]]>"),
            mal_entry(manga_mangadb_id="0", manga_title="<![CDATA[Pushed Two]]>"),
        )
        # A dry run pushes nothing.
        assert (await import_file(http, user, data, dry_run="true")).status_code == 200
        assert (await import_file(http, user, data)).status_code == 200
        events = []
        async with asyncio.timeout(10):
            while len(events) < 2:
                _, event = await sub.get()
                events.append(event)
    finally:
        await sub.close()
    assert [e["type"] for e in events] == ["progress", "progress"]
    for event in events:
        r = await http.get(f"/api/library/{event['data']['manga_id']}", headers=user.headers)
        assert event["data"] == r.json()
    assert [e["data"]["version"] for e in events] == sorted(e["data"]["version"] for e in events)
