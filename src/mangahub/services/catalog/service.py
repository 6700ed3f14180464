"""CatalogService: series, genres and chapters; ranked search; bulk imports."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.exc import IntegrityError

from mangahub.bus import EventBus
from mangahub.cache import Cache
from mangahub.catalog.loader import bundled_digest, load_bundled
from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaFormat, MangaStatus, SortBy
from mangahub.domain.errors import Conflict
from mangahub.domain.schemas import (
    ChapterPublic,
    GenrePublic,
    MangaCreate,
    MangaDetails,
    MangaSummary,
    MangaUpdate,
)
from mangahub.domain.text import check_optional, check_text
from mangahub.readmodels.catalog import (
    CATALOG_CHANGED,
    SUMMARY_COLUMNS,
    publish_catalog_changed,
    summaries,
)
from mangahub.services._common import (
    check_page,
    fetch_page,
    load_manga,
    manga_not_found,
    require_manga,
    valid_id,
)
from mangahub.services.catalog.edits import record_edits, record_tombstones
from mangahub.services.catalog.importer import Importer
from mangahub.services.catalog.limits import MAX_MANGADEX_ID
from mangahub.services.catalog.live_index import LiveIndex
from mangahub.services.catalog.params import (
    effective_order,
    parse_formats,
    parse_order,
    parse_sort,
    parse_status,
    parse_year,
    split_genres,
    unknown_names,
)
from mangahub.services.catalog.queries import Filters, ordering
from mangahub.services.catalog.seed import mark_seeded, seed_marker
from mangahub.services.catalog.text import build_search_text, genre_slug, slugify
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

log = logging.getLogger(__name__)

GENRES_CACHE_KEY = "catalog:genres"
GENRES_CACHE_TTL = 300.0

_genre_list = TypeAdapter(list[GenrePublic])


class CatalogService:
    def __init__(self, db: Database, cache: Cache, bus: EventBus | None = None) -> None:
        self._db = db
        self._cache = cache
        self._bus = bus
        self._index = LiveIndex(db)

    async def _changed(self, *manga_ids: int) -> None:
        await publish_catalog_changed(self._bus, *manga_ids)

    async def follow_changes(self) -> None:
        """Search sees catalog writes of every process as soon as their event arrives
        (and re-checks after missed events), not only at the next stamp check."""
        if self._bus is not None:
            await self._bus.tap(CATALOG_CHANGED, lambda _event: self._index.invalidate())

    async def warm_search(self) -> None:
        """Build the search index now (start-up), not in the first searches."""
        async with self._db.session() as s:
            await self._index.refresh(s)

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
        self._index.invalidate()
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
        first, see :mod:`.index`), else by popularity; ``genre`` and ``status`` ignore
        case."""
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
        *,
        formats: str | Sequence[MangaFormat | str] | None = None,
        year: int | str | None = None,
    ) -> tuple[list[MangaSummary], int]:
        """Like :meth:`list_manga`, with every genre in ``genres`` required, any of
        ``formats`` (novels only when asked for), a start ``year`` and a sort order
        (see :func:`effective_order`); ties are broken by id. An unknown genre, status
        or format is a ValidationFailed naming the close ones."""
        check_optional(q, "q")
        filters = Filters(
            genres=[check_text(g, "genres") for g in split_genres(genres)],
            status=parse_status(status),
            formats=parse_formats(formats),
            year=parse_year(year),
        )
        key, direction = effective_order(
            parse_sort(sort_by), parse_order(order), q is not None and bool(q.strip())
        )
        check_page(page, page_size)
        await self._check_genres(filters.genres)
        if q is not None and q.strip():
            return await self._search_text(q, filters, key, direction, page, page_size)
        stmt = select(*SUMMARY_COLUMNS).where(*filters.conditions())
        stmt = stmt.order_by(*ordering(self._db.dialect, SortBy(key), direction))
        # Core rows, no ORM entities; one read without BEGIN/COMMIT (no common
        # snapshot needed: the total is a hint that a concurrent write may move anyway).
        async with self._db.read() as conn:
            rows, total = await fetch_page(conn, stmt, page, page_size)
            return await summaries(conn, rows), total

    async def _search_text(
        self, q: str, filters: Filters, key: str, direction: str, page: int, page_size: int
    ) -> tuple[list[MangaSummary], int]:
        """One page of the series matching ``q`` that pass ``filters``: best match
        first (filtered in the index, one query for the page), or by another sort key."""
        async with self._db.session() as s:
            found = await self._index.search(s, q)
            ranked = [entry.id for entry in found if filters.accepts(entry)]
            if key != "relevance":
                stmt = select(Manga).where(Manga.id.in_(ranked), *filters.conditions())
                stmt = stmt.order_by(*ordering(self._db.dialect, SortBy(key), direction))
                rows, total = await fetch_page(s, stmt, page, page_size)
                return [MangaSummary.model_validate(row[0]) for row in rows], total
            start = (page - 1) * page_size
            wanted = ranked[start : start + page_size]
            if not wanted:
                return [], len(ranked)
            rows_ = (await s.scalars(select(Manga).where(Manga.id.in_(wanted)))).all()
            by_id = {row.id: MangaSummary.model_validate(row) for row in rows_}
        return [by_id[i] for i in wanted if i in by_id], len(ranked)

    async def _check_genres(self, names: Sequence[str]) -> None:
        """ValidationFailed for a genre no series can have (the cached list is checked
        first, the table when the cache may be behind)."""
        if not names:
            return
        known = {genre.slug for genre in await self.list_genres()}
        if all(genre_slug(name) in known for name in names):
            return
        async with self._db.session() as s:
            stored = (await s.scalars(select(Genre.name))).all()
        slugs = {genre_slug(name) for name in stored}
        unknown = [name for name in names if genre_slug(name) not in slugs]
        if unknown:
            unknown_names("genres", "genre", unknown, stored)

    def list_formats(self) -> list[str]:
        """Every format a series can have, in the order of :class:`MangaFormat`."""
        return [member.value for member in MangaFormat]

    def list_statuses(self) -> list[str]:
        """Every publication status, in the order of :class:`MangaStatus`."""
        return [member.value for member in MangaStatus]

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
        """See :meth:`_create_manga`; search sees the change at once."""
        try:
            return await self._create_manga(data)
        finally:
            self._index.invalidate()

    async def _create_manga(self, data: MangaCreate) -> MangaDetails:
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
        """See :meth:`_update_manga`; search sees the change at once."""
        try:
            return await self._update_manga(manga_id, data)
        finally:
            self._index.invalidate()

    async def _update_manga(self, manga_id: int, data: MangaUpdate) -> MangaDetails:
        """Change the fields present in ``data`` (``null`` clears an optional one).
        The slug stays: links to the series keep working after a retitle."""
        changes = {name: getattr(data, name) for name in data.model_fields_set}
        check_update(changes)
        async with self._db.session() as s:
            # An import reads a series, merges and writes it back whole: without the
            # lock an edit committed in between would be overwritten.
            await lock_catalog(s, self._db.dialect)
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
        """See :meth:`_delete_manga`; search sees the change at once."""
        try:
            await self._delete_manga(manga_id)
        finally:
            self._index.invalidate()

    async def _delete_manga(self, manga_id: int) -> None:
        """Remove a series with everything hanging off it (chapters, library entries,
        progress, ratings, comments, chat) by the foreign keys' ON DELETE CASCADE."""
        deleted = None
        if valid_id(manga_id):
            async with self._db.session() as s:
                await lock_catalog(s, self._db.dialect)  # not under an import's feet
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
