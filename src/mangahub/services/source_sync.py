"""The catalog side of source sync: storing chapters from a MangaDex feed (and telling
followers about new ones), and applying AniList enrichment to stored series.

The sync jobs fetch; this module writes. Every write is idempotent: a chapter is
stored once per (series, number, language) and per MangaDex chapter id, whichever
dialect, so running a check twice stores and notifies nothing the second time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mangahub.bus import EventBus
from mangahub.domain.chapters import chapters_counted
from mangahub.readmodels.catalog import publish_catalog_changed
from mangahub.services.catalog import build_search_text
from mangahub.services.notifications import NotificationService
from mangahub.sources.models import SourceChapter, SourceManga
from mangahub.storage.database import Database
from mangahub.storage.models import ChapterRow, Genre, Manga, MangaGenre
from mangahub.storage.types import utcnow

log = logging.getLogger(__name__)

_MAX_CHAPTER = 99_999_999.99  # Numeric(10, 2)
# Rows per INSERT: within SQLite's bound-parameter limit.
_INSERT_BATCH = 500
_MAX_TITLE, _MAX_VOLUME, _MAX_LANGUAGE, _MAX_GROUP = 500, 20, 10, 200


@dataclass(frozen=True, slots=True)
class TrackedSeries:
    """A series whose MangaDex feed the chapter check reads."""

    id: int
    mangadex_id: str
    title: str
    total_chapters: int | None
    checked_before: bool  # False: its first check stores chapters without notifying


@dataclass(frozen=True, slots=True)
class ChapterCheck:
    """What one series' check stored."""

    stored: int
    notified: int


@dataclass(frozen=True, slots=True)
class EnrichTarget:
    """A stored series as AniList enrichment sees it."""

    id: int
    title: str
    alt_titles: tuple[str, ...]
    anilist_id: int | None


class SourceSyncService:
    def __init__(
        self, db: Database, notifications: NotificationService, bus: EventBus | None = None
    ) -> None:
        self._db = db
        self._notifications = notifications
        self._bus = bus

    # --- chapters ---------------------------------------------------------------------

    async def due_for_chapter_check(
        self, checked_before: datetime, limit: int, after_id: int = 0
    ) -> list[TrackedSeries]:
        """Series with a MangaDex id not checked since ``checked_before``: never-checked
        first, then the oldest check; ties by id."""
        stmt: Select[Any] = (
            select(Manga.id, Manga.mangadex_id, Manga.title, Manga.total_chapters)
            .add_columns(Manga.last_chapter_check_at)
            .where(*_due(checked_before))
            .order_by(
                Manga.last_chapter_check_at.is_not(None),
                Manga.last_chapter_check_at,
                Manga.id,
            )
            .limit(limit)
        )
        if after_id:
            stmt = stmt.where(Manga.id > after_id)
        async with self._db.session() as s:
            rows = (await s.execute(stmt)).all()
        return [
            TrackedSeries(row[0], row[1], row[2], row[3], checked_before=row[4] is not None)
            for row in rows
        ]

    async def count_due(self, checked_before: datetime) -> int:
        """How many series :meth:`due_for_chapter_check` would return without a limit."""
        stmt = select(func.count()).where(*_due(checked_before))
        async with self._db.session() as s:
            return int(await s.scalar(stmt) or 0)

    async def store_chapters(
        self, series: TrackedSeries, chapters: Iterable[SourceChapter]
    ) -> ChapterCheck:
        """Store the feed's chapters not stored yet, mark the series checked, grow its
        chapter count, and raise one ``new_chapter`` per follower per new chapter —
        except on the series' first check (a fresh import would flood every reader
        with its back catalog)."""
        rows = _chapter_rows(series.id, chapters)
        now = utcnow()
        async with self._db.session() as s:
            inserted: list[float] = []
            for start in range(0, len(rows), _INSERT_BATCH):
                chunk = rows[start : start + _INSERT_BATCH]
                result = await s.execute(
                    _insert_new(self._db.dialect, chunk).returning(ChapterRow.number)
                )
                inserted.extend(float(n) for n in result.scalars().all())
            inserted.sort()
            # A check alone is bookkeeping (updated_at kept); a grown count is a change,
            # decided by the database so a larger count written meanwhile stays.
            await s.execute(
                update(Manga)
                .where(Manga.id == series.id)
                .values(last_chapter_check_at=now, updated_at=Manga.updated_at)
                .execution_options(synchronize_session=False)
            )
            newest = max((chapters_counted(r["number"]) for r in rows), default=0)
            if newest > 0:
                await s.execute(
                    update(Manga)
                    .where(
                        Manga.id == series.id,
                        or_(Manga.total_chapters.is_(None), Manga.total_chapters < newest),
                    )
                    .values(total_chapters=newest, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
        if newest > 0:
            await publish_catalog_changed(self._bus, series.id)  # the count may have grown
        notified = 0
        if series.checked_before:
            previous = series.total_chapters
            for number in inserted:
                notified += await self._notifications.notify_new_chapter(
                    series.id, series.title, number, None if previous is None else float(previous)
                )
        return ChapterCheck(stored=len(inserted), notified=notified)

    # --- new series -------------------------------------------------------------------

    async def ids_by_mangadex(self, mangadex_ids: Sequence[str]) -> dict[str, int]:
        """Stored series ids by MangaDex id (unknown ids left out)."""
        wanted = list(dict.fromkeys(mangadex_ids))
        if not wanted:
            return {}
        async with self._db.session() as s:
            rows = await s.execute(
                select(Manga.mangadex_id, Manga.id).where(Manga.mangadex_id.in_(wanted))
            )
            return {m: i for m, i in rows.all() if m is not None}

    async def last_series_id(self) -> int:
        """The highest series id stored (0 for an empty catalog)."""
        async with self._db.session() as s:
            return int(await s.scalar(select(func.max(Manga.id))) or 0)

    async def mark_synced(self, mangadex_ids: Sequence[str]) -> None:
        """Record that these series were just read from MangaDex."""
        if not mangadex_ids:
            return
        async with self._db.session() as s:
            await s.execute(
                update(Manga)
                .where(Manga.mangadex_id.in_(list(dict.fromkeys(mangadex_ids))))
                # Bookkeeping only: the series itself did not change.
                .values(last_synced_at=utcnow(), updated_at=Manga.updated_at)
                .execution_options(synchronize_session=False)
            )

    # --- AniList enrichment -----------------------------------------------------------

    async def enrichment_batch(self, after_id: int, limit: int) -> list[EnrichTarget]:
        """The next ``limit`` series by id after ``after_id``."""
        stmt = (
            select(Manga.id, Manga.title, Manga.alt_titles, Manga.anilist_id)
            .where(Manga.id > after_id)
            .order_by(Manga.id)
            .limit(limit)
        )
        async with self._db.session() as s:
            rows = (await s.execute(stmt)).all()
        return [EnrichTarget(r[0], r[1], tuple(r[2] or ()), r[3]) for r in rows]

    async def apply_enrichment(self, manga_id: int, found: SourceManga) -> bool:
        """Overlay what AniList knows on a stored series: popularity, extra alt titles,
        a larger chapter count, and its AniList id when no other series holds it.
        Title, description, status and users' ratings stay as they are. Returns
        whether anything changed."""
        record = found.record
        async with self._db.session() as s:
            manga = await s.get(Manga, manga_id)
            if manga is None:
                return False
            changes: dict[str, Any] = {}
            if record.popularity and record.popularity != manga.popularity:
                changes["popularity"] = record.popularity
            known = {manga.title, *manga.alt_titles}
            extra = [
                t for t in (record.title, *record.alt_titles) if t not in known and len(t) <= 500
            ]
            if extra:
                changes["alt_titles"] = [*manga.alt_titles, *dict.fromkeys(extra)]
            if record.total_chapters and record.total_chapters > (manga.total_chapters or 0):
                changes["total_chapters"] = record.total_chapters
            if manga.anilist_id is None and record.anilist_id is not None:
                holder = await s.scalar(
                    select(Manga.id).where(Manga.anilist_id == record.anilist_id)
                )
                if holder is None:
                    changes["anilist_id"] = record.anilist_id
            if not changes:
                return False
            if "alt_titles" in changes:
                genres = (
                    await s.scalars(
                        select(Genre.name)
                        .join(MangaGenre, and_(MangaGenre.genre_id == Genre.id))
                        .where(MangaGenre.manga_id == manga_id)
                        .order_by(Genre.name)
                    )
                ).all()
                changes["search_text"] = build_search_text(
                    manga.title, changes["alt_titles"], manga.authors, genres
                )
            await s.execute(
                update(Manga)
                .where(Manga.id == manga_id)
                .values(**changes, last_synced_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        await publish_catalog_changed(self._bus, manga_id)
        return True


def _due(checked_before: datetime) -> list[ColumnElement[bool]]:
    return [
        Manga.mangadex_id.is_not(None),
        or_(
            Manga.last_chapter_check_at.is_(None),
            Manga.last_chapter_check_at < checked_before,
        ),
    ]


def _chapter_rows(manga_id: int, chapters: Iterable[SourceChapter]) -> list[dict[str, Any]]:
    """Storable rows, one per (number, language) — the first feed entry wins (several
    scanlation groups often release the same chapter); unnumbered entries are skipped."""
    rows: dict[tuple[float, str], dict[str, Any]] = {}
    seen_ids: set[str] = set()
    for ch in chapters:
        if ch.number is None or not 0 <= ch.number <= _MAX_CHAPTER or ch.source_id in seen_ids:
            continue
        language = (ch.language or "en")[:_MAX_LANGUAGE]
        number = round(ch.number, 2)
        key = (number, language)
        if key in rows:
            continue
        seen_ids.add(ch.source_id)
        rows[key] = {
            "manga_id": manga_id,
            "number": number,
            "title": ch.title[:_MAX_TITLE] if ch.title else None,
            "volume": ch.volume[:_MAX_VOLUME] if ch.volume else None,
            "language": language,
            "published_at": _aware(ch.published_at),
            "mangadex_id": ch.source_id if len(ch.source_id) <= 36 else None,
            "scanlation_group": ch.scanlation_group[:_MAX_GROUP] if ch.scanlation_group else None,
            "created_at": utcnow(),
        }
    return list(rows.values())


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _insert_new(dialect: str, rows: list[dict[str, Any]]) -> Any:
    """INSERT … ON CONFLICT DO NOTHING over every unique key (number and source id)."""
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(ChapterRow).values(rows).on_conflict_do_nothing()
