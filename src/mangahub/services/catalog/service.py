"""CatalogService: series, genres and chapters; ranked search; bulk imports."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, Select, delete, or_, select
from sqlalchemy.exc import IntegrityError

from mangahub.bus import EventBus
from mangahub.cache import Cache
from mangahub.catalog.loader import bundled_digest, load_bundled
from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaStatus, SortBy
from mangahub.domain.errors import Conflict
from mangahub.domain.schemas import (
    ChapterPublic,
    GenrePublic,
    MangaCreate,
    MangaDetails,
    MangaSummary,
    MangaUpdate,
)
from mangahub.readmodels.catalog import SUMMARY_COLUMNS, publish_catalog_changed, summaries
from mangahub.services._common import (
    fetch_page,
    load_manga,
    manga_not_found,
    require_manga,
    valid_id,
)
from mangahub.services.catalog.edits import record_edits, record_tombstones
from mangahub.services.catalog.importer import Importer
from mangahub.services.catalog.limits import MAX_MANGADEX_ID
from mangahub.services.catalog.params import (
    parse_order,
    parse_sort,
    parse_status,
    split_genres,
)
from mangahub.services.catalog.queries import filter_genres, ordering
from mangahub.services.catalog.seed import mark_seeded, seed_marker
from mangahub.services.catalog.text import build_search_text, slugify
from mangahub.services.catalog.writes import (
    check_create,
    check_update,
    free_slug,
    genres_by_id,
    lock_catalog,
    reject_taken_ids,
)
from mangahub.storage.database import Database
from mangahub.storage.models import ChapterRow, Genre, Manga
from mangahub.storage.search import TextSearch, text_search

log = logging.getLogger(__name__)

GENRES_CACHE_KEY = "catalog:genres"
GENRES_CACHE_TTL = 300.0

_genre_list = TypeAdapter(list[GenrePublic])


class CatalogService:
    def __init__(self, db: Database, cache: Cache, bus: EventBus | None = None) -> None:
        self._db = db
        self._cache = cache
        self._bus = bus

    async def _changed(self, *manga_ids: int) -> None:
        await publish_catalog_changed(self._bus, *manga_ids)

    # --- imports ----------------------------------------------------------------------

    async def seed_bundled(self, *, force: bool = False) -> int:
        """Load the bundled catalog once per bundled file; returns how many series it
        added. ``force`` loads it even if this file was loaded already.

        A new bundled file upgrades the database: missing series are added, and the
        series already there get the values they lack (ids, alt titles, year, format,
        popularity...) without losing any they have. Fields an admin edited are left
        alone and series an admin deleted stay deleted. Idempotent and safe to run from
        several processes at once: the second caller waits for the catalog lock, then
        sees the marker the first one committed.
        """
        digest = bundled_digest()
        if not force and await self._seeded_digest() == digest:
            return 0
        records = load_bundled()
        async with self._db.session() as s:
            await lock_catalog(s, self._db.dialect)
            if not force and await seed_marker(s) == digest:
                return 0
            importer = Importer(s, self._db.dialect, update_existing=True, fill_only=True)
            await importer.run(records)
            await mark_seeded(s, self._db.dialect, digest, len(records))
        await self._after_import(importer)
        if importer.updated:
            log.info("catalog: filled in %d existing series", importer.updated)
        return importer.added

    async def import_series(self, records: Iterable[SeriesRecord]) -> int:
        """Insert or update series in bulk; returns how many rows were added or changed.

        A record updates the series with its ``mangadex_id`` (else its ``anilist_id``,
        else its ``mal_id``; a record with none, the series of the same title that has
        none); fields it leaves empty keep their stored value, so a partial source
        (AniList enrichment) never erases what another one supplied, and fields an
        admin edited keep the admin's value. A record of a series an admin deleted is
        skipped. Missing genres are created. Series that would not change are not
        written (nor counted).
        One transaction: a failed import leaves the catalog as it was.
        """
        async with self._db.session() as s:
            await lock_catalog(s, self._db.dialect)
            importer = Importer(s, self._db.dialect, update_existing=True)
            changed = await importer.run(records)
        await self._after_import(importer)
        return changed

    async def _seeded_digest(self) -> str | None:
        async with self._db.session() as s:
            return await seed_marker(s)

    async def _after_import(self, importer: Importer) -> None:
        if importer.created_genres:
            await self._cache.delete(GENRES_CACHE_KEY)
        await self._changed()

    # --- search -----------------------------------------------------------------------

    async def list_manga(
        self,
        q: str | None = None,
        genre: str | None = None,
        status: MangaStatus | str | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> tuple[list[MangaSummary], int]:
        """Series matching ``q`` (title, alt titles, authors, genre names; best match
        first), else by popularity; ``genre`` and ``status`` ignore case."""
        genres = [genre] if genre is not None else []
        return await self.advanced_search(q, genres, status, None, None, page, page_size)

    async def advanced_search(
        self,
        q: str | None = None,
        genres: str | Sequence[str] | None = None,
        status: MangaStatus | str | None = None,
        sort_by: SortBy | str | None = None,
        order: str | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> tuple[list[MangaSummary], int]:
        """Like :meth:`list_manga`, with every genre in ``genres`` required and a sort
        order (see :func:`effective_order`); ties are broken by id."""
        status_ = parse_status(status)
        sort_ = parse_sort(sort_by)
        order_ = parse_order(order)
        stmt: Select[Any] = select(*SUMMARY_COLUMNS)
        search: TextSearch | None = None
        if q is not None and q.strip():
            search = text_search(self._db.dialect, q)
            if search is None:
                return [], 0  # only punctuation: nothing can match it
            stmt = search.apply(stmt)
        stmt = filter_genres(stmt, split_genres(genres))
        if status_ is not None:
            stmt = stmt.where(Manga.status == status_.value)
        stmt = stmt.order_by(*ordering(self._db.dialect, search, sort_, order_))
        # Core rows, no ORM entities; one read without BEGIN/COMMIT (no common
        # snapshot needed: the total is a hint that a concurrent write may move anyway).
        async with self._db.read() as conn:
            rows, total = await fetch_page(conn, stmt, page, page_size)
            return await summaries(conn, rows), total

    # --- single series ----------------------------------------------------------------

    async def get_manga(self, manga_id: int) -> MangaDetails:
        async with self._db.session() as s:
            return MangaDetails.model_validate(await load_manga(s, manga_id))

    async def get_many(self, manga_ids: Sequence[int]) -> list[MangaDetails]:
        """Details of several series in one query, in the order asked; unknown ids
        are left out."""
        wanted = [i for i in dict.fromkeys(manga_ids) if valid_id(i)]
        if not wanted:
            return []
        async with self._db.session() as s:
            rows = (await s.scalars(select(Manga).where(Manga.id.in_(wanted)))).all()
            found = {row.id: MangaDetails.model_validate(row) for row in rows}
        return [found[i] for i in wanted if i in found]

    async def find_by_source_ids(
        self, mangadex_ids: Sequence[str], anilist_ids: Sequence[int]
    ) -> list[MangaDetails]:
        """The series carrying any of these MangaDex or AniList ids, in one query."""
        mangadex = [i for i in dict.fromkeys(mangadex_ids) if 0 < len(i) <= MAX_MANGADEX_ID]
        anilist = [i for i in dict.fromkeys(anilist_ids) if valid_id(i)]
        conditions: list[ColumnElement[bool]] = []
        if mangadex:
            conditions.append(Manga.mangadex_id.in_(mangadex))
        if anilist:
            conditions.append(Manga.anilist_id.in_(anilist))
        if not conditions:
            return []
        async with self._db.session() as s:
            rows = (await s.scalars(select(Manga).where(or_(*conditions)).order_by(Manga.id))).all()
            return [MangaDetails.model_validate(row) for row in rows]

    async def create_manga(self, data: MangaCreate) -> MangaDetails:
        """A new series; ValidationFailed for unknown genres, Conflict for a source id
        that another series already has."""
        check_create(data)
        try:
            async with self._db.session() as s:
                await lock_catalog(s, self._db.dialect)
                genres = await genres_by_id(s, data.genre_ids)
                await reject_taken_ids(s, data.mangadex_id, data.anilist_id)
                manga = Manga(
                    slug=await free_slug(s, slugify(data.title)),
                    title=data.title,
                    alt_titles=list(data.alt_titles),
                    authors=list(data.authors),
                    status=data.status.value,
                    total_chapters=data.total_chapters,
                    description=data.description,
                    cover_url=data.cover_url,
                    year=data.year,
                    mangadex_id=data.mangadex_id,
                    anilist_id=data.anilist_id,
                    genres=genres,
                    search_text=build_search_text(
                        data.title, data.alt_titles, data.authors, (g.name for g in genres)
                    ),
                )
                s.add(manga)
                await s.flush()
                created = MangaDetails.model_validate(manga)
        except IntegrityError as exc:
            # Only a writer outside the catalog lock could get here first.
            raise Conflict("the series conflicts with an existing one") from exc
        await self._changed(created.id)
        return created

    async def update_manga(self, manga_id: int, data: MangaUpdate) -> MangaDetails:
        """Change the fields present in ``data`` (``null`` clears an optional one).
        The slug stays: links to the series keep working after a retitle."""
        changes = {name: getattr(data, name) for name in data.model_fields_set}
        check_update(changes)
        async with self._db.session() as s:
            manga = await load_manga(s, manga_id)
            if "genre_ids" in changes:
                manga.genres = await genres_by_id(s, changes.pop("genre_ids"))
            await record_edits(s, self._db.dialect, manga.id, data.model_fields_set)
            for name, value in changes.items():
                setattr(manga, name, value.value if isinstance(value, MangaStatus) else value)
            manga.search_text = build_search_text(
                manga.title, manga.alt_titles, manga.authors, (g.name for g in manga.genres)
            )
            await s.flush()
            await s.refresh(manga)
            updated = MangaDetails.model_validate(manga)
        await self._changed(manga_id)
        return updated

    async def delete_manga(self, manga_id: int) -> None:
        """Remove a series with everything hanging off it (chapters, library entries,
        progress, ratings, comments, chat) by the foreign keys' ON DELETE CASCADE."""
        deleted = None
        if valid_id(manga_id):
            async with self._db.session() as s:
                manga = await s.get(Manga, manga_id)
                if manga is not None:
                    await record_tombstones(s, self._db.dialect, manga)
                stmt = delete(Manga).where(Manga.id == manga_id).returning(Manga.id)
                deleted = await s.scalar(stmt)
        if deleted is None:
            raise manga_not_found(manga_id)
        await self._changed(manga_id)

    # --- genres and chapters --------------------------------------------------------------

    async def list_genres(self) -> list[GenrePublic]:
        """Every genre by name. Cached: genres change only through imports, which
        drop the cached copy."""
        cached = await self._cache.get(GENRES_CACHE_KEY)
        if cached is not None:
            return _genre_list.validate_python(cached)
        async with self._db.session() as s:
            rows = (await s.scalars(select(Genre).order_by(Genre.name))).all()
            genres = [GenrePublic.model_validate(row) for row in rows]
        await self._cache.set(
            GENRES_CACHE_KEY, _genre_list.dump_python(genres, mode="json"), GENRES_CACHE_TTL
        )
        return genres

    async def list_chapters(
        self, manga_id: int, page: int = 1, page_size: int = 20
    ) -> tuple[list[ChapterPublic], int]:
        """A series' chapters by number (5, 5.5, 6…); NotFound for an unknown series."""
        stmt = (
            select(ChapterRow)
            .where(ChapterRow.manga_id == manga_id)
            .order_by(ChapterRow.number, ChapterRow.language, ChapterRow.id)
        )
        async with self._db.session() as s:
            await require_manga(s, manga_id)
            rows, total = await fetch_page(s, stmt, page, page_size)
            return [ChapterPublic.model_validate(row[0]) for row in rows], total
