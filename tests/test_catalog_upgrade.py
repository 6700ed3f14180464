"""The bundled catalog on a fresh database, and its upgrade of a database that holds
the 500-series catalog of earlier releases: new series added, missing values filled,
admin edits kept, deleted series not brought back, and a second run changing nothing."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from mangahub.app import Runtime
from mangahub.cache import MemoryCache
from mangahub.catalog.build import MANGADEX_SEED_JSON, mangadex_seed_records
from mangahub.catalog.loader import load_bundled
from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaFormat, MangaStatus
from mangahub.domain.schemas import MangaDetails, MangaUpdate
from mangahub.services.catalog import CatalogService
from mangahub.services.catalog.seed import mark_seeded
from mangahub.storage.database import Database
from mangahub.storage.models import Genre, Manga
from tests.conftest import UserSession

ONE_PIECE_MDX = "a1c7c817-4e59-43b7-9365-09675a149a6f"
ATTACK_ON_TITAN_MDX = "304ceac3-8cdb-4fe7-acf7-2b6ff7a60613"
DANDADAN_MDX = "68112dc1-2b80-4f20-beb8-2f2a8716a430"
FRIEREN_MDX = "b0b721ff-c388-4486-aa0f-c2b0bb321512"
KOREAN_WIND_BREAKER_MDX = "c1c408f6-3dec-4d62-b6b3-b57e615d933c"

# Series a new reader looks for first: AniList id -> what the catalog must know.
FAMOUS: dict[int, dict[str, Any]] = {
    30002: {"title": "Berserk", "mal_id": 2, "year": 1989, "alt": "ベルセルク"},
    30011: {"title": "Naruto", "mal_id": None, "year": 1999, "alt": "NARUTO"},
    101517: {"title": "Jujutsu Kaisen", "mal_id": None, "year": 2018, "alt": None},
    53390: {"title": "Attack on Titan", "mal_id": 23390, "year": 2009, "alt": "進撃の巨人"},
    65243: {"title": "Haikyu!!", "mal_id": 35243, "year": 2012, "alt": "Haikyuu!!"},
    30021: {"title": "Death Note", "mal_id": 21, "year": 2003, "alt": "DEATH NOTE"},
}


def old_catalog(repo_root: Path) -> tuple[list[SeriesRecord], str]:
    """The 500 MangaDex series earlier releases bundled, and that file's digest."""
    path = repo_root / "datasets" / "catalog" / MANGADEX_SEED_JSON
    return mangadex_seed_records(path), hashlib.sha256(path.read_bytes()).hexdigest()


async def snapshot(db: Database) -> list[tuple[Any, ...]]:
    """Every catalog value of every series, with its genres, in id order."""
    async with db.session() as s:
        rows = (await s.scalars(select(Manga).order_by(Manga.id))).all()
        return [
            (
                m.id,
                m.slug,
                m.title,
                m.alt_titles,
                m.authors,
                m.status,
                m.format,
                m.total_chapters,
                m.volumes,
                m.description,
                m.cover_url,
                m.year,
                m.popularity,
                m.mangadex_id,
                m.anilist_id,
                m.mal_id,
                m.themes,
                m.author_roles,
                m.search_text,
                m.updated_at,
                [g.name for g in m.genres],
            )
            for m in rows
        ]


async def by_source_id(service: CatalogService, mangadex_id: str) -> MangaDetails:
    found = await service.find_by_source_ids([mangadex_id], [])
    assert len(found) == 1, found
    return found[0]


# --- a fresh database ------------------------------------------------------------------


async def test_famous_series_are_loaded_with_their_ids_titles_and_years(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    found = {m.anilist_id: m for m in await runtime.catalog.find_by_source_ids([], list(FAMOUS))}
    assert set(found) == set(FAMOUS)
    for anilist_id, want in FAMOUS.items():
        r = await client.get(f"/api/manga/{found[anilist_id].id}")
        assert r.status_code == 200, r.text
        details = r.json()
        assert details["title"] == want["title"]
        if want["mal_id"] is not None:  # else a list import may have taught it one
            assert details["mal_id"] == want["mal_id"]
        assert details["year"] == want["year"]
        assert details["format"] == "manga"
        assert details["popularity"] > 1000
        if want["alt"] is not None:
            assert want["alt"] in details["alt_titles"], details["alt_titles"]
    titan = (await client.get(f"/api/manga/{found[53390].id}")).json()
    assert titan["mangadex_id"] == ATTACK_ON_TITAN_MDX  # joined through MangaDex's own links
    assert "Shingeki no Kyojin" in titan["alt_titles"]
    berserk = (await client.get(f"/api/manga/{found[30002].id}")).json()
    assert berserk["author_roles"] == [{"name": "Miura Kentarou", "role": "Story & Art"}]
    assert berserk["themes"] and "Seinen" in berserk["themes"]
    death_note = (await client.get(f"/api/manga/{found[30021].id}")).json()
    assert (death_note["total_chapters"], death_note["volumes"]) == (108, 12)


async def test_formats_come_from_the_sources(runtime: Runtime) -> None:
    bundled = load_bundled()
    novel = next(r for r in bundled if r.mal_id == 89357)  # Classroom of the Elite, MAL "Novel"
    stored = await runtime.catalog.find_by_source_ids([], [novel.anilist_id or 0])
    assert [m.format for m in stored] == ["novel"]
    manhwa = await by_source_id(runtime.catalog, KOREAN_WIND_BREAKER_MDX)
    assert manhwa.format == "manhwa"  # AniList: country KR


# --- upgrading a database that holds the old catalog -------------------------------------


async def test_upgrade_keeps_edits_and_deletions_adds_series_and_is_idempotent(
    fresh_database_url: str, repo_root: Path
) -> None:
    db = Database(fresh_database_url)
    try:
        await db.migrate()
        service = CatalogService(db, MemoryCache())
        old, old_digest = old_catalog(repo_root)
        assert await service.import_series(old) == 500
        async with db.session() as s:
            await mark_seeded(s, db.dialect, old_digest, len(old))
            comedy = await s.scalar(select(Genre.id).where(Genre.name == "Comedy"))
        assert comedy is not None

        # An admin retitles ONE PIECE, rewrites its description and genres, and deletes
        # Dandadan.
        one_piece = await by_source_id(service, ONE_PIECE_MDX)
        edit = MangaUpdate(
            title="One Piece (edited)", description="Admin text.", genre_ids=[comedy]
        )
        await service.update_manga(one_piece.id, edit)
        dandadan = await by_source_id(service, DANDADAN_MDX)
        await service.delete_manga(dandadan.id)
        frieren_before = await by_source_id(service, FRIEREN_MDX)
        assert (frieren_before.anilist_id, frieren_before.year) == (None, None)

        bundled = load_bundled()
        added = await service.seed_bundled()
        assert added == len(bundled) - len(old)  # all new series; Dandadan not back
        # Every format: novels are listed only when asked for.
        assert (await service.advanced_search(formats=list(MangaFormat)))[1] == len(bundled) - 1

        # The edited fields stayed the admin's; the others were filled in.
        one_piece = await service.get_manga(one_piece.id)
        assert one_piece.title == "One Piece (edited)"
        assert one_piece.description == "Admin text."
        assert one_piece.genres == ["Comedy"]
        assert (one_piece.anilist_id, one_piece.mal_id, one_piece.year) == (30013, 13, 1997)
        assert one_piece.popularity > 0 and "One Piece" in one_piece.alt_titles
        # Deleted stays deleted: the new catalog also knows it by its AniList id.
        assert await service.find_by_source_ids([DANDADAN_MDX], [132029]) == []
        # An untouched old series gets every new field, keeping its id and slug.
        frieren = await service.get_manga(frieren_before.id)
        assert frieren.slug == frieren_before.slug and frieren.title == "Sousou no Frieren"
        assert (frieren.anilist_id, frieren.mal_id, frieren.year) == (118586, 126287, 2020)
        assert "葬送のフリーレン" in frieren.alt_titles
        assert frieren.author_roles[0].role == "Story"
        wind = await by_source_id(service, KOREAN_WIND_BREAKER_MDX)
        assert wind.format == "manhwa"

        # Running again changes nothing: not on a restart, not even when forced.
        before = await snapshot(db)
        assert await service.seed_bundled() == 0
        assert await service.seed_bundled(force=True) == 0
        assert await snapshot(db) == before
    finally:
        await db.close()


async def test_fresh_load_and_upgrade_agree_where_nothing_was_edited(
    fresh_database_url: str, repo_root: Path, tmp_path: Path
) -> None:
    """An upgraded database holds the same catalog values as a freshly loaded one."""
    upgraded = Database(fresh_database_url)
    fresh = Database(f"sqlite+aiosqlite:///{tmp_path / 'reference.db'}")
    try:
        for db in (upgraded, fresh):
            await db.migrate()
        old, _ = old_catalog(repo_root)
        await CatalogService(upgraded, MemoryCache()).import_series(old)
        for db in (upgraded, fresh):
            await CatalogService(db, MemoryCache()).seed_bundled()

        def by_title(rows: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
            # id, slug, search text and timestamps may differ; the catalog values may not.
            return {row[13:16]: (row[2:18], sorted(row[20])) for row in rows}

        assert by_title(await snapshot(upgraded)) == by_title(await snapshot(fresh))
    finally:
        await upgraded.close()
        await fresh.close()


# --- admin changes over HTTP are respected by every import ------------------------------


async def test_patch_and_delete_over_http_bind_later_imports(
    client: httpx.AsyncClient, admin: UserSession, runtime: Runtime
) -> None:
    anilist_id = 1_900_000_000 + uuid.uuid4().int % 90_000_000
    record = SeriesRecord(
        title=f"Imported {uuid.uuid4().hex[:8]}", status=MangaStatus.ONGOING, anilist_id=anilist_id
    )
    assert await runtime.catalog.import_series([record]) == 1
    [stored] = await runtime.catalog.find_by_source_ids([], [anilist_id])
    r = await client.patch(
        f"/api/manga/{stored.id}", json={"title": "Kept Title"}, headers=admin.headers
    )
    assert r.status_code == 200, r.text

    changed = SeriesRecord(
        title="Source Title", status=MangaStatus.COMPLETED, anilist_id=anilist_id, year=2001
    )
    assert await runtime.catalog.import_series([changed]) == 1
    [after] = await runtime.catalog.find_by_source_ids([], [anilist_id])
    assert (after.title, after.status, after.year) == ("Kept Title", "completed", 2001)

    r = await client.delete(f"/api/manga/{stored.id}", headers=admin.headers)
    assert r.status_code == 204, r.text
    assert await runtime.catalog.import_series([changed]) == 0
    assert await runtime.catalog.find_by_source_ids([], [anilist_id]) == []
