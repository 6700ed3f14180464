"""Bulk import of SeriesRecords: insert or update many series in a few round trips."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Table, and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaFormat
from mangahub.services._common import MAX_ROW_ID
from mangahub.services.catalog.limits import MAX_GENRE, MAX_MANGADEX_ID, MAX_TITLE, MAX_URL
from mangahub.services.catalog.text import (
    build_search_text,
    genre_slug,
    slugify,
    strip_nul,
    unique_slug,
)
from mangahub.storage.models import CatalogEdit, CatalogTombstone, Genre, Manga, MangaGenre
from mangahub.storage.types import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")

# The table itself: a Core insert of many rows is sent as a few multi-row statements,
# where the ORM-enabled one sent hundreds of single-row ones on SQLite.
MANGA = cast(Table, Manga.__table__)

# Rows per INSERT/UPDATE round trip of an import: large enough to amortize the round
# trips, small enough for SQLite's bound-parameter limit.
IMPORT_BATCH = 500

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
    "mal_id",
    "format",
    "volumes",
    "themes",
    "author_roles",
    "search_text",
)
_SOURCE_IDS = ("mangadex_id", "anilist_id", "mal_id")
# Stored values that mean "not known": a fill-only import replaces them ("manga" is
# the format column's default, not something a source said).
_UNSET: tuple[Any, ...] = (None, "", [], 0, "manga")
# The admin-editable fields (MangaUpdate) by the column they protect.
_EDITED_COLUMN = {"genre_ids": "genres"}


@dataclass
class _Stored:
    """One series already in the database, as an import batch sees it."""

    id: int
    values: dict[str, Any]
    genre_ids: frozenset[int] = frozenset()
    edited: frozenset[str] = frozenset()  # columns an admin changed


@dataclass
class _Matches:
    """The stored series a batch of records refers to: by either source id, or for a
    record with neither, by its exact title among stored series with neither (so
    importing the same file twice does not duplicate them)."""

    by_id: dict[str, dict[Any, _Stored]] = field(
        default_factory=lambda: {column: {} for column in _SOURCE_IDS}
    )
    by_title: dict[str, _Stored] = field(default_factory=dict)

    def find(self, record: SeriesRecord) -> _Stored | None:
        """By MangaDex id, else AniList id, else MAL id; by title for a record with none."""
        ids = [(column, getattr(record, column)) for column in _SOURCE_IDS]
        for column, value in ids:
            if value is not None and value in self.by_id[column]:
                return self.by_id[column][value]
        if all(value is None for _, value in ids):
            return self.by_title.get(record.title)
        return None

    def add(self, stored: _Stored) -> None:
        for column in _SOURCE_IDS:
            if stored.values[column] is not None:
                self.by_id[column][stored.values[column]] = stored
        if all(stored.values[column] is None for column in _SOURCE_IDS):
            self.by_title.setdefault(stored.values["title"], stored)  # the oldest one

    def owner(self, column: str, value: Any) -> int | None:
        found = self.by_id[column].get(value)
        return None if found is None else found.id


class Importer:
    """One import, inside one transaction that holds the catalog lock."""

    def __init__(
        self, s: AsyncSession, dialect: str, *, update_existing: bool, fill_only: bool = False
    ) -> None:
        """``update_existing``: merge records into the series they match (else those
        are left alone); ``fill_only``: the merge only fills what is not known yet and
        adds to lists, so a catalog upgrade never replaces a value a sync wrote."""
        self._s = s
        self._dialect = dialect
        self._update_existing = update_existing
        self._fill_only = fill_only
        self._tombstones: set[tuple[str, str]] = set()
        self.added = 0
        self.updated = 0
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
        tombstones = select(CatalogTombstone.source, CatalogTombstone.source_id)
        self._tombstones = {(src, sid) for src, sid in (await self._s.execute(tombstones)).all()}
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
                if not self._deleted(record):
                    inserts.append(record)
            elif self._update_existing:
                values, genre_ids = self._merge(stored, record, matches)
                if values != stored.values or genre_ids != stored.genre_ids:
                    updates.append((stored, values, genre_ids))
        await self._insert(inserts)
        await self._update(updates)
        self.added += len(inserts)
        self.updated += len(updates)
        return len(inserts) + len(updates)

    def _deleted(self, record: SeriesRecord) -> bool:
        """Whether an admin deleted the series ``record`` describes (by any source id)."""
        return any(
            (column.removesuffix("_id"), str(getattr(record, column))) in self._tombstones
            for column in _SOURCE_IDS
            if getattr(record, column) is not None
        )

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
            await self._load_edits(stored)
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

    async def _load_edits(self, stored: dict[int, _Stored]) -> None:
        edited: dict[int, set[str]] = {}
        stmt = select(CatalogEdit.manga_id, CatalogEdit.field).where(
            CatalogEdit.manga_id.in_(list(stored))
        )
        for manga_id, name in (await self._s.execute(stmt)).all():
            edited.setdefault(manga_id, set()).add(_EDITED_COLUMN.get(name, name))
        for manga_id, columns in edited.items():
            stored[manga_id].edited = frozenset(columns)

    def _genre_ids(self, record: SeriesRecord) -> frozenset[int]:
        return frozenset(self._genre_by_slug[genre_slug(g)].id for g in record.genres)

    def _merge(
        self, stored: _Stored, record: SeriesRecord, matches: _Matches
    ) -> tuple[dict[str, Any], frozenset[int]]:
        """The stored values overlaid with what ``record`` knows, except the fields an
        admin edited; in fill-only mode, only unknown values are replaced and lists
        grow (stored items first)."""
        known: dict[str, Any] = {
            "title": record.title,
            "status": record.status.value,
            "alt_titles": list(record.alt_titles) or None,
            "authors": list(record.authors) or None,
            "total_chapters": record.total_chapters,
            "description": record.description or None,
            "cover_url": record.cover_url,
            "year": record.year,
            "popularity": record.popularity or None,
            "format": record.format.value if record.format is not None else None,
            "volumes": record.volumes,
            "themes": list(record.themes) or None,
            "author_roles": [a.to_json() for a in record.author_roles] or None,
        }
        # A source id moves onto this series only if no other series holds it.
        for column in _SOURCE_IDS:
            value = getattr(record, column)
            if value is not None and matches.owner(column, value) in (None, stored.id):
                known[column] = value
        values = dict(stored.values)
        for name, value in known.items():
            old = values[name]
            if value is None or name in stored.edited:
                continue
            if not self._fill_only:
                values[name] = value
            elif name in ("alt_titles", "authors", "themes"):
                values[name] = list(dict.fromkeys([*old, *value]))
            elif name == "total_chapters":
                values[name] = max(old or 0, value)
            elif old in _UNSET:
                values[name] = value
        genre_ids = stored.genre_ids
        if record.genres and "genres" not in stored.edited:
            new = self._genre_ids(record)
            genre_ids = stored.genre_ids | new if self._fill_only else new
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
        created = await self._s.execute(insert(MANGA).returning(MANGA.c.id, MANGA.c.slug), rows)
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
            "mal_id": record.mal_id,
            "format": (record.format or MangaFormat.MANGA).value,
            "volumes": record.volumes,
            "themes": list(record.themes),
            "author_roles": [a.to_json() for a in record.author_roles],
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
    conditions: list[ColumnElement[bool]] = []
    for column in _SOURCE_IDS:
        ids = [getattr(r, column) for r in records if getattr(r, column) is not None]
        if ids:
            conditions.append(getattr(Manga, column).in_(ids))
    titles = [r.title for r in records if all(getattr(r, c) is None for c in _SOURCE_IDS)]
    if titles:
        no_ids = [getattr(Manga, column).is_(None) for column in _SOURCE_IDS]
        conditions.append(and_(Manga.title.in_(titles), *no_ids))
    return conditions


def _clean(record: SeriesRecord) -> SeriesRecord | None:
    """The record made storable, or None (logged) when it cannot be: the database's
    limits are checked here so one bad record cannot fail a whole import."""
    title = strip_nul(record.title).strip()
    if not title or len(title) > MAX_TITLE:
        log.warning("catalog import: skipping a record with an unusable title %r", title[:80])
        return None
    mangadex_id = record.mangadex_id
    if mangadex_id is not None and not 0 < len(mangadex_id) <= MAX_MANGADEX_ID:
        mangadex_id = None
    genres = (strip_nul(g).strip() for g in record.genres)
    return replace(
        record,
        title=title,
        alt_titles=_texts(record.alt_titles),
        authors=_texts(record.authors),
        genres=tuple(
            dict.fromkeys(g for g in genres if g and len(g) <= MAX_GENRE and genre_slug(g))
        ),
        total_chapters=_bounded(record.total_chapters, 0, 100_000),
        description=strip_nul(record.description),
        cover_url=record.cover_url
        if record.cover_url and len(record.cover_url) <= MAX_URL
        else None,
        year=_bounded(record.year, 1, 9999),
        mangadex_id=mangadex_id,
        anilist_id=_bounded(record.anilist_id, 1, MAX_ROW_ID),
        mal_id=_bounded(record.mal_id, 1, MAX_ROW_ID),
        volumes=_bounded(record.volumes, 0, 100_000),
        themes=tuple(t for t in _texts(record.themes) if len(t) <= MAX_GENRE),
        popularity=min(max(record.popularity, 0), MAX_ROW_ID),
    )


def _texts(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in (strip_nul(x).strip() for x in values) if v))


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
        keys = [(column, getattr(record, column)) for column in _SOURCE_IDS]
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
