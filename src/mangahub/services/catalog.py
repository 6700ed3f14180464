"""The catalog: series, genres and chapters; ranked search; bulk imports.

Every writer of series rows that must pick slugs or match source ids (imports,
the bundled seed, admin creates) takes the *catalog lock* first, so two processes
starting at once, or a sync job racing an admin, never pick the same slug or insert
the same MangaDex series twice.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, Select, delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import UnaryExpression

from mangahub.cache import Cache
from mangahub.catalog.loader import bundled_digest, load_bundled
from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaStatus, SortBy
from mangahub.domain.errors import Conflict, ValidationFailed
from mangahub.domain.schemas import (
    ChapterPublic,
    GenrePublic,
    MangaCreate,
    MangaDetails,
    MangaSummary,
    MangaUpdate,
)
from mangahub.domain.text import check_optional, check_text, single_line
from mangahub.services._common import (
    MAX_ROW_ID,
    fetch_page,
    load_manga,
    manga_not_found,
    require_manga,
    upsert,
    valid_id,
)
from mangahub.storage.database import Database
from mangahub.storage.models import ChapterRow, Genre, Manga, MangaGenre, SyncState
from mangahub.storage.search import TextSearch, text_search, title_sort_key
from mangahub.storage.types import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")
E = TypeVar("E", MangaStatus, SortBy)

# Rows per INSERT/UPDATE round trip of an import: large enough to amortize the round
# trips, small enough for SQLite's bound-parameter limit.
IMPORT_BATCH = 500
SEED_SYNC_TYPE = "bundled_catalog"
GENRES_CACHE_KEY = "catalog:genres"
GENRES_CACHE_TTL = 300.0
# pg_advisory_xact_lock key of the catalog lock ("MHCA").
_CATALOG_LOCK_KEY = 0x4D484341
# Column limits of storage/models.py, checked before a bulk insert can trip on them.
_MAX_TITLE, _MAX_GENRE, _MAX_URL, _MAX_MANGADEX_ID = 500, 50, 1000, 36
_MAX_SLUG_BASE = 200  # leaves room for "-<n>" within the 255-character column

# Characters PostgreSQL's text-search parser reads as markup, paths, hosts or emails.
_PARSER_SPECIAL = re.compile(r"[<>/@.\\]")
_WORDS = re.compile(r"[^\W_]+")

_genre_list = TypeAdapter(list[GenrePublic])


# --- text helpers -------------------------------------------------------------------


def slugify(value: str, fallback: str = "series") -> str:
    """URL slug of a title or genre name: ``"JoJo's Part 7: SBR"`` → ``jojos-part-7-sbr``.

    Latin text is folded to ASCII; a title with no Latin letters keeps its own
    letters (``나-혼자만-레벨업``) rather than collapsing to nothing.
    """
    text_ = re.sub(r"['’`]", "", value).lower()
    ascii_ = unicodedata.normalize("NFKD", text_).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_).strip("-")
    if not slug:
        slug = re.sub(r"[\W_]+", "-", text_).strip("-")
    return slug[:_MAX_SLUG_BASE].strip("-") or fallback


@lru_cache(maxsize=4096)
def genre_slug(name: str) -> str:
    """A genre's identity: "Slice of Life", "slice of life" and "slice-of-life" are one
    genre. Empty for a name without letters or digits (no genre has that slug).
    Cached: imports look up the same few dozen names for every series."""
    return slugify(name, fallback="")


def unique_slug(base: str, taken: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3``… whichever is free; records it as taken."""
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


def build_search_text(
    title: str, alt_titles: Sequence[str], authors: Sequence[str], genres: Iterable[str]
) -> str:
    """What full-text search indexes next to the title (see Manga.search_text): alt
    titles, authors, genre names, then plainer spellings of the names that need them."""
    names = [*alt_titles, *authors]
    variants = (v for name in (title, *names) for v in _plain_spellings(name))
    extra = dict.fromkeys(v for v in variants if v not in (title, *names))
    return " ".join([*names, *genres, *extra])


def _plain_spellings(name: str) -> list[str]:
    """Spellings PostgreSQL's "simple" search needs to find ``name`` by its words.

    Its parser keeps accents ("pokemon" would miss "Pokémon"; SQLite's FTS5 folds
    them itself), reads "Fate/type" as one path and "a.b" as one host name, and skips
    markup such as ``<script>…</script>`` entirely; a copy without accents, and
    for names with such characters a copy of just the words, keeps every word findable.
    """
    decomposed = unicodedata.normalize("NFKD", name)
    folded = unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )
    spellings = [folded]
    if _PARSER_SPECIAL.search(name):
        spellings.append(" ".join(_WORDS.findall(folded)))
    return spellings


def _strip_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; imported data is cleaned rather than refused.
    return value.replace("\x00", "")


# --- parameters shared by every door ----------------------------------------------------


def parse_status(value: MangaStatus | str | None) -> MangaStatus | None:
    """A status filter, case-insensitive; ValidationFailed for an unknown one."""
    return _parse_enum(MangaStatus, value, "status")


def parse_sort(value: SortBy | str | None) -> SortBy | None:
    return _parse_enum(SortBy, value, "sort_by")


def parse_order(value: str | None) -> str | None:
    """``asc`` or ``desc`` in any case, or None for the sort key's default."""
    if value is None:
        return None
    if value.strip().lower() not in ("asc", "desc"):
        raise _invalid("order", "must be asc or desc")
    return value.strip().lower()


def split_genres(value: str | Iterable[str] | None) -> list[str]:
    """``"Action, comedy,"`` → ``["Action", "comedy"]`` (order kept, blanks dropped)."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return list(dict.fromkeys(item.strip() for item in items if item.strip()))


def effective_order(sort_by: SortBy | None, order: str | None, has_query: bool) -> tuple[str, str]:
    """``(sort key, direction)`` that a search really applies: relevance for a text
    query without ``sort_by``, popularity otherwise; descending except for title."""
    if sort_by is None and has_query:
        return "relevance", "desc"
    key = sort_by or SortBy.POPULARITY
    return key.value, order or ("asc" if key is SortBy.TITLE else "desc")


def _parse_enum(kind: type[E], value: E | str | None, name: str) -> E | None:
    if value is None or isinstance(value, kind):
        return value
    try:
        return kind(value.strip().lower())
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise _invalid(name, f"must be one of {allowed}") from None


def _invalid(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"invalid {name}", details=[{"field": name, "message": message}])


# --- the service --------------------------------------------------------------------------


class CatalogService:
    def __init__(self, db: Database, cache: Cache) -> None:
        self._db = db
        self._cache = cache

    # --- imports ----------------------------------------------------------------------

    async def seed_bundled(self) -> int:
        """Load the bundled catalog once per database; returns how many series it added.

        Idempotent and safe to run from several processes at once: the second caller
        waits for the catalog lock, then sees the marker the first one committed.
        A series an admin deleted stays deleted; only a new bundled file is loaded again
        (and then only its series missing from the database are added).
        """
        digest = bundled_digest()
        if await self._seeded_digest() == digest:
            return 0
        records = load_bundled()
        async with self._db.session() as s:
            await _lock_catalog(s, self._db.dialect)
            if await _seed_marker(s) == digest:
                return 0
            importer = _Importer(s, self._db.dialect, update_existing=False)
            added = await importer.run(records)
            await _mark_seeded(s, self._db.dialect, digest, len(records))
        await self._after_import(importer)
        return added

    async def import_series(self, records: Iterable[SeriesRecord]) -> int:
        """Insert or update series in bulk; returns how many rows were added or changed.

        A record updates the series with its ``mangadex_id`` (else its ``anilist_id``;
        a record with neither, the series of the same title that has neither); fields
        it leaves empty keep their stored value, so a partial source (AniList
        enrichment) never erases what another one supplied. Missing genres are
        created. Series that would not change are not written (nor counted).
        One transaction: a failed import leaves the catalog as it was.
        """
        async with self._db.session() as s:
            await _lock_catalog(s, self._db.dialect)
            importer = _Importer(s, self._db.dialect, update_existing=True)
            changed = await importer.run(records)
        await self._after_import(importer)
        return changed

    async def _seeded_digest(self) -> str | None:
        async with self._db.session() as s:
            return await _seed_marker(s)

    async def _after_import(self, importer: _Importer) -> None:
        if importer.created_genres:
            await self._cache.delete(GENRES_CACHE_KEY)

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
        check_optional(q, "q")
        status_ = parse_status(status)
        sort_ = parse_sort(sort_by)
        order_ = parse_order(order)
        stmt = select(Manga)
        search: TextSearch | None = None
        if q is not None and q.strip():
            search = text_search(self._db.dialect, q)
            if search is None:
                return [], 0  # only punctuation: nothing can match it
            stmt = search.apply(stmt)
        stmt = _filter_genres(stmt, [check_text(g, "genres") for g in split_genres(genres)])
        if status_ is not None:
            stmt = stmt.where(Manga.status == status_.value)
        stmt = stmt.order_by(*_ordering(self._db.dialect, search, sort_, order_))
        async with self._db.session() as s:
            rows, total = await fetch_page(s, stmt, page, page_size)
            return [MangaSummary.model_validate(row[0]) for row in rows], total

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
        mangadex = [i for i in dict.fromkeys(mangadex_ids) if 0 < len(i) <= _MAX_MANGADEX_ID]
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
        _check_create(data)
        try:
            async with self._db.session() as s:
                await _lock_catalog(s, self._db.dialect)
                genres = await _genres_by_id(s, data.genre_ids)
                await _reject_taken_ids(s, data.mangadex_id, data.anilist_id)
                manga = Manga(
                    slug=await _free_slug(s, slugify(data.title)),
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
                return MangaDetails.model_validate(manga)
        except IntegrityError as exc:
            # Only a writer outside the catalog lock could get here first.
            raise Conflict("the series conflicts with an existing one") from exc

    async def update_manga(self, manga_id: int, data: MangaUpdate) -> MangaDetails:
        """Change the fields present in ``data`` (``null`` clears an optional one).
        The slug stays: links to the series keep working after a retitle."""
        changes = {name: getattr(data, name) for name in data.model_fields_set}
        _check_update(changes)
        async with self._db.session() as s:
            manga = await load_manga(s, manga_id)
            if "genre_ids" in changes:
                manga.genres = await _genres_by_id(s, changes.pop("genre_ids"))
            for name, value in changes.items():
                setattr(manga, name, value.value if isinstance(value, MangaStatus) else value)
            manga.search_text = build_search_text(
                manga.title, manga.alt_titles, manga.authors, (g.name for g in manga.genres)
            )
            await s.flush()
            await s.refresh(manga)
            return MangaDetails.model_validate(manga)

    async def delete_manga(self, manga_id: int) -> None:
        """Remove a series with everything hanging off it (chapters, library entries,
        progress, ratings, comments, chat) by the foreign keys' ON DELETE CASCADE."""
        deleted = None
        if valid_id(manga_id):
            async with self._db.session() as s:
                stmt = delete(Manga).where(Manga.id == manga_id).returning(Manga.id)
                deleted = await s.scalar(stmt)
        if deleted is None:
            raise manga_not_found(manga_id)

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


# --- querying -------------------------------------------------------------------------


def _filter_genres(stmt: Select[Manga], names: list[str]) -> Select[Manga]:
    """Series having *every* genre named (matched by slug, so case and spacing do not
    matter: "slice of life" finds "Slice of Life")."""
    if not names:
        return stmt
    slugs = {genre_slug(name) for name in names}
    having_all = (
        select(MangaGenre.manga_id)
        .join(Genre, Genre.id == MangaGenre.genre_id)
        .where(Genre.slug.in_(slugs))
        .group_by(MangaGenre.manga_id)
        .having(func.count() == len(slugs))
    )
    return stmt.where(Manga.id.in_(having_all))


def _ordering(
    dialect: str, search: TextSearch | None, sort_by: SortBy | None, order: str | None
) -> list[UnaryExpression[Any]]:
    key, direction = effective_order(sort_by, order, search is not None)
    if key == "relevance" and search is not None:
        return [*search.ranking(), Manga.popularity.desc(), Manga.id.asc()]
    column = _sort_column(dialect, SortBy(key))
    term = column.asc() if direction == "asc" else column.desc()
    if key in (SortBy.RATING, SortBy.CHAPTERS):
        term = term.nulls_last()  # "no rating yet" is not the best or the worst rating
    return [term, Manga.id.asc()]


def _sort_column(dialect: str, sort_by: SortBy) -> ColumnElement[Any]:
    if sort_by is SortBy.TITLE:
        return title_sort_key(dialect)
    columns: dict[SortBy, ColumnElement[Any]] = {
        SortBy.POPULARITY: Manga.popularity.expression,
        SortBy.RATING: Manga.average_rating.expression,
        SortBy.UPDATED: Manga.updated_at.expression,
        SortBy.CHAPTERS: Manga.total_chapters.expression,
    }
    return columns[sort_by]


# --- writing single series --------------------------------------------------------------


async def _lock_catalog(s: AsyncSession, dialect: str) -> None:
    """Serialize catalog writers until the transaction ends; must come first in it."""
    if dialect == "postgresql":
        await s.execute(select(func.pg_advisory_xact_lock(_CATALOG_LOCK_KEY)))
    else:
        # A no-op write takes SQLite's write lock (waiting for it under the busy
        # timeout), and since nothing was read before it, every later read in this
        # transaction sees what the previous writer committed.
        await s.execute(text("UPDATE manga SET id = id WHERE 0"))


async def _genres_by_id(s: AsyncSession, genre_ids: Sequence[int]) -> list[Genre]:
    wanted = set(genre_ids)
    valid = {gid for gid in wanted if valid_id(gid)}
    found = list((await s.scalars(select(Genre).where(Genre.id.in_(valid)))).all()) if valid else []
    unknown = sorted(wanted - {g.id for g in found})
    if unknown:
        raise ValidationFailed(
            "unknown genre ids",
            details=[{"field": "genre_ids", "message": f"unknown genre ids: {unknown}"}],
        )
    return sorted(found, key=lambda g: g.name)


async def _reject_taken_ids(
    s: AsyncSession, mangadex_id: str | None, anilist_id: int | None
) -> None:
    for column, value in (("mangadex_id", mangadex_id), ("anilist_id", anilist_id)):
        if value is not None:
            taken = await s.scalar(select(Manga.id).where(getattr(Manga, column) == value))
            if taken is not None:
                raise Conflict(
                    f"another series has this {column}",
                    details={"field": column, "manga_id": taken},
                )


async def _free_slug(s: AsyncSession, base: str) -> str:
    """The first of ``base``, ``base-2``… no series uses (caller holds the catalog lock)."""
    similar = select(Manga.slug).where(
        or_(Manga.slug == base, Manga.slug.startswith(f"{base}-", autoescape=True))
    )
    return unique_slug(base, set((await s.scalars(similar)).all()))


def _check_create(data: MangaCreate) -> None:
    _check_no_nul(
        {
            "description": data.description,
            "cover_url": data.cover_url,
            "mangadex_id": data.mangadex_id,
        }
    )
    if data.anilist_id is not None and data.anilist_id > MAX_ROW_ID:
        raise _invalid("anilist_id", f"must be at most {MAX_ROW_ID}")


_NOT_NULL = frozenset({"title", "alt_titles", "authors", "status", "description", "genre_ids"})


def _check_update(changes: Mapping[str, Any]) -> None:
    nulls = sorted(name for name in _NOT_NULL if name in changes and changes[name] is None)
    if nulls:
        raise ValidationFailed(
            "these fields cannot be null",
            details=[{"field": name, "message": "must not be null"} for name in nulls],
        )
    _check_no_nul({k: changes.get(k) for k in ("description", "cover_url")})


def _check_no_nul(values: Mapping[str, str | None]) -> None:
    # Titles and names reject control characters in the schema already; these free
    # fields only need NUL kept out, which PostgreSQL cannot store.
    bad = [name for name, value in values.items() if value is not None and "\x00" in value]
    if bad:
        raise ValidationFailed(
            "NUL characters are not allowed",
            details=[{"field": name, "message": "must not contain NUL"} for name in bad],
        )


# --- the bundled-catalog marker ---------------------------------------------------------


async def _seed_marker(s: AsyncSession) -> str | None:
    """Digest of the bundled file this database was seeded from, if any."""
    stmt = select(SyncState.cursor).where(
        SyncState.sync_type == SEED_SYNC_TYPE, SyncState.status == "done"
    )
    return await s.scalar(stmt)


async def _mark_seeded(s: AsyncSession, dialect: str, digest: str, series: int) -> None:
    now = utcnow()
    row = {
        "sync_type": SEED_SYNC_TYPE,
        "status": "done",
        "cursor": digest,
        "last_run_at": now,
        "last_success_at": now,
        "error": None,
        "metadata": {"series": series, "source": "MangaDex"},
    }
    await s.execute(
        upsert(
            dialect,
            SyncState,
            [row],
            keys=("sync_type",),
            update=("status", "cursor", "last_run_at", "last_success_at", "error", "metadata"),
        )
    )


# --- bulk import --------------------------------------------------------------------------

# Fields an import may set; compared against the stored row to skip unchanged series.
_IMPORTED = (
    "title",
    "status",
    "alt_titles",
    "authors",
    "total_chapters",
    "description",
    "cover_url",
    "year",
    "popularity",
    "mangadex_id",
    "anilist_id",
    "search_text",
)


@dataclass
class _Stored:
    """One series already in the database, as an import batch sees it."""

    id: int
    values: dict[str, Any]
    genre_ids: frozenset[int] = frozenset()


@dataclass
class _Matches:
    """The stored series a batch of records refers to: by either source id, or for a
    record with neither, by its exact title among stored series with neither (so
    importing the same file twice does not duplicate them)."""

    by_mangadex: dict[str, _Stored] = field(default_factory=dict)
    by_anilist: dict[int, _Stored] = field(default_factory=dict)
    by_title: dict[str, _Stored] = field(default_factory=dict)

    def find(self, record: SeriesRecord) -> _Stored | None:
        if record.mangadex_id is not None and record.mangadex_id in self.by_mangadex:
            return self.by_mangadex[record.mangadex_id]
        if record.anilist_id is not None:
            return self.by_anilist.get(record.anilist_id)
        return self.by_title.get(record.title) if record.mangadex_id is None else None

    def add(self, stored: _Stored) -> None:
        mangadex_id, anilist_id = stored.values["mangadex_id"], stored.values["anilist_id"]
        if mangadex_id is not None:
            self.by_mangadex[mangadex_id] = stored
        if anilist_id is not None:
            self.by_anilist[anilist_id] = stored
        if mangadex_id is None and anilist_id is None:
            self.by_title.setdefault(stored.values["title"], stored)  # the oldest one

    def owner(self, column: str, value: Any) -> int | None:
        found = (self.by_mangadex if column == "mangadex_id" else self.by_anilist).get(value)
        return None if found is None else found.id


class _Importer:
    """One import, inside one transaction that holds the catalog lock."""

    def __init__(self, s: AsyncSession, dialect: str, *, update_existing: bool) -> None:
        self._s = s
        self._dialect = dialect
        self._update_existing = update_existing
        self._slugs: set[str] = set()
        self._genre_by_slug: dict[str, Genre] = {}
        self._genre_names: dict[int, str] = {}
        self._now: datetime = utcnow()
        self.created_genres = False

    async def run(self, records: Iterable[SeriesRecord]) -> int:
        batch = _dedupe(r for r in map(_clean, records) if r is not None)
        if not batch:
            return 0
        self._slugs = set((await self._s.scalars(select(Manga.slug))).all())
        await self._ensure_genres(name for r in batch for name in r.genres)
        changed = 0
        for chunk in _chunks(batch, IMPORT_BATCH):
            changed += await self._run_chunk(chunk)
        return changed

    async def _ensure_genres(self, names: Iterable[str]) -> None:
        """Known genres by slug; missing ones created (first spelling seen wins)."""
        for genre in (await self._s.scalars(select(Genre))).all():
            self._genre_by_slug[genre.slug] = genre
        missing: dict[str, str] = {}
        for name in names:
            slug = genre_slug(name)
            if slug not in self._genre_by_slug:
                missing.setdefault(slug, name)
        if missing:
            rows = [{"name": name, "slug": slug} for slug, name in missing.items()]
            created = await self._s.scalars(insert(Genre).returning(Genre), rows)
            for genre in created.all():
                self._genre_by_slug[genre.slug] = genre
            self.created_genres = True
        self._genre_names = {g.id: g.name for g in self._genre_by_slug.values()}

    async def _run_chunk(self, records: list[SeriesRecord]) -> int:
        matches = await self._stored(records)
        inserts: list[SeriesRecord] = []
        updates: list[tuple[_Stored, dict[str, Any], frozenset[int]]] = []
        for record in records:
            stored = matches.find(record)
            if stored is None:
                inserts.append(record)
            elif self._update_existing:
                values, genre_ids = self._merge(stored, record, matches)
                if values != stored.values or genre_ids != stored.genre_ids:
                    updates.append((stored, values, genre_ids))
        await self._insert(inserts)
        await self._update(updates)
        return len(inserts) + len(updates)

    async def _stored(self, records: list[SeriesRecord]) -> _Matches:
        matches = _Matches()
        conditions = _match_conditions(records)
        if not conditions:
            return matches
        columns = [getattr(Manga, name) for name in _IMPORTED]
        stmt = select(Manga.id, *columns).where(or_(*conditions)).order_by(Manga.id)
        stored = {
            row[0]: _Stored(row[0], dict(zip(_IMPORTED, row[1:], strict=True)))
            for row in (await self._s.execute(stmt)).all()
        }
        if self._update_existing and stored:
            await self._load_genre_ids(stored)
        for item in stored.values():
            matches.add(item)
        return matches

    async def _load_genre_ids(self, stored: dict[int, _Stored]) -> None:
        links: dict[int, set[int]] = {manga_id: set() for manga_id in stored}
        stmt = select(MangaGenre.manga_id, MangaGenre.genre_id).where(
            MangaGenre.manga_id.in_(list(stored))
        )
        for manga_id, genre_id in (await self._s.execute(stmt)).all():
            links[manga_id].add(genre_id)
        for manga_id, genre_ids in links.items():
            stored[manga_id].genre_ids = frozenset(genre_ids)

    def _genre_ids(self, record: SeriesRecord) -> frozenset[int]:
        return frozenset(self._genre_by_slug[genre_slug(g)].id for g in record.genres)

    def _merge(
        self, stored: _Stored, record: SeriesRecord, matches: _Matches
    ) -> tuple[dict[str, Any], frozenset[int]]:
        """The stored values overlaid with what ``record`` knows."""
        values = dict(stored.values)
        values.update(title=record.title, status=record.status.value)
        known = {
            "alt_titles": list(record.alt_titles) or None,
            "authors": list(record.authors) or None,
            "total_chapters": record.total_chapters,
            "description": record.description or None,
            "cover_url": record.cover_url,
            "year": record.year,
            "popularity": record.popularity or None,
        }
        values.update({name: value for name, value in known.items() if value is not None})
        # A source id moves onto this series only if no other series holds it.
        for column in ("mangadex_id", "anilist_id"):
            value = getattr(record, column)
            if value is not None and matches.owner(column, value) in (None, stored.id):
                values[column] = value
        genre_ids = self._genre_ids(record) if record.genres else stored.genre_ids
        values["search_text"] = self._search_text(values, genre_ids)
        return values, genre_ids

    def _search_text(self, values: Mapping[str, Any], genre_ids: Iterable[int]) -> str:
        names = sorted(self._genre_names[gid] for gid in genre_ids)
        return build_search_text(values["title"], values["alt_titles"], values["authors"], names)

    async def _insert(self, records: list[SeriesRecord]) -> None:
        if not records:
            return
        by_slug: dict[str, SeriesRecord] = {}
        rows = []
        for record in records:
            slug = unique_slug(slugify(record.title), self._slugs)
            by_slug[slug] = record
            rows.append(self._new_row(record, slug))
        created = await self._s.execute(insert(Manga).returning(Manga.id, Manga.slug), rows)
        links = [
            {"manga_id": manga_id, "genre_id": genre_id}
            for manga_id, slug in created.all()
            for genre_id in self._genre_ids(by_slug[slug])
        ]
        if links:
            await self._s.execute(insert(MangaGenre), links)

    def _new_row(self, record: SeriesRecord, slug: str) -> dict[str, Any]:
        values: dict[str, Any] = {
            "title": record.title,
            "status": record.status.value,
            "alt_titles": list(record.alt_titles),
            "authors": list(record.authors),
            "total_chapters": record.total_chapters,
            "description": record.description,
            "cover_url": record.cover_url,
            "year": record.year,
            "popularity": record.popularity,
            "mangadex_id": record.mangadex_id,
            "anilist_id": record.anilist_id,
        }
        values["search_text"] = self._search_text(values, self._genre_ids(record))
        return values | {
            "slug": slug,
            "rating_count": 0,
            "created_at": self._now,
            "updated_at": self._now,
        }

    async def _update(self, updates: list[tuple[_Stored, dict[str, Any], frozenset[int]]]) -> None:
        if not updates:
            return
        rows = [
            {"id": stored.id, **values, "updated_at": self._now} for stored, values, _ in updates
        ]
        await self._s.execute(update(Manga), rows)
        regenred = [(stored.id, ids) for stored, _, ids in updates if ids != stored.genre_ids]
        if regenred:
            await self._s.execute(
                delete(MangaGenre).where(MangaGenre.manga_id.in_([mid for mid, _ in regenred]))
            )
            links = [{"manga_id": mid, "genre_id": gid} for mid, ids in regenred for gid in ids]
            if links:
                await self._s.execute(insert(MangaGenre), links)


def _match_conditions(records: list[SeriesRecord]) -> list[ColumnElement[bool]]:
    """WHERE clauses finding the stored series ``records`` may refer to (see _Matches)."""
    mangadex_ids = [r.mangadex_id for r in records if r.mangadex_id is not None]
    anilist_ids = [r.anilist_id for r in records if r.anilist_id is not None]
    titles = [r.title for r in records if r.mangadex_id is None and r.anilist_id is None]
    conditions: list[ColumnElement[bool]] = []
    if mangadex_ids:
        conditions.append(Manga.mangadex_id.in_(mangadex_ids))
    if anilist_ids:
        conditions.append(Manga.anilist_id.in_(anilist_ids))
    if titles:
        conditions.append(
            Manga.title.in_(titles) & Manga.mangadex_id.is_(None) & Manga.anilist_id.is_(None)
        )
    return conditions


def _clean(record: SeriesRecord) -> SeriesRecord | None:
    """The record made storable, or None (logged) when it cannot be: the database's
    limits are checked here so one bad record cannot fail a whole import."""
    title = single_line(record.title).strip()
    if not title or len(title) > _MAX_TITLE:
        log.warning("catalog import: skipping a record with an unusable title %r", title[:80])
        return None
    mangadex_id = record.mangadex_id
    if mangadex_id is not None and not 0 < len(mangadex_id) <= _MAX_MANGADEX_ID:
        mangadex_id = None
    genres = (single_line(g).strip() for g in record.genres)
    return replace(
        record,
        title=title,
        alt_titles=_texts(record.alt_titles),
        authors=_texts(record.authors),
        genres=tuple(
            dict.fromkeys(g for g in genres if g and len(g) <= _MAX_GENRE and genre_slug(g))
        ),
        total_chapters=_bounded(record.total_chapters, 0, 100_000),
        description=_strip_nul(record.description),
        cover_url=record.cover_url
        if record.cover_url and len(record.cover_url) <= _MAX_URL
        else None,
        year=_bounded(record.year, 1, 9999),
        mangadex_id=mangadex_id,
        anilist_id=_bounded(record.anilist_id, 1, MAX_ROW_ID),
        popularity=min(max(record.popularity, 0), MAX_ROW_ID),
    )


def _texts(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in (single_line(x).strip() for x in values) if v))


def _bounded(value: int | None, low: int, high: int) -> int | None:
    return value if value is not None and low <= value <= high else None


def _dedupe(records: Iterable[SeriesRecord]) -> list[SeriesRecord]:
    """One record per series (source id, or title for records without one), the last
    one winning: a statement must not write the same series twice (PostgreSQL
    refuses, and the result would depend on row order)."""
    slots: list[SeriesRecord | None] = []
    index: dict[tuple[str, Any], int] = {}
    keys_of: dict[int, list[tuple[str, Any]]] = {}
    for record in records:
        keys = [("mangadex", record.mangadex_id), ("anilist", record.anilist_id)]
        keys = [key for key in keys if key[1] is not None] or [("title", record.title)]
        hits = sorted({index[key] for key in keys if key in index})
        if hits:
            # The record replaces every earlier one sharing an id with it; their other
            # ids no longer refer to anything in the batch.
            for stale in hits:
                for key in keys_of.pop(stale, []):
                    index.pop(key, None)
                slots[stale] = None
            slot = hits[0]
            slots[slot] = record
        else:
            slots.append(record)
            slot = len(slots) - 1
        keys_of[slot] = keys
        index.update(dict.fromkeys(keys, slot))
    return [record for record in slots if record is not None]


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
