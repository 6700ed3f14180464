"""Import a reading list file (MAL XML, AniList JSON, our JSON) into a reader's list.

All or nothing: the file is parsed and checked entirely before anything is written,
and every write (new series, entries, removed entries, series averages) happens in
one transaction. Entries are stored as the file says (a MAL list that completed a
series at chapter 180 of 201 stays at 180); the live-write rules of
``services.reading_list`` are for one change at a time, not for restoring a list.

Matching: MAL id, then AniList id, then MangaDex id, then normalized title (see
``lists.matching``). An entry that matches nothing creates a local series from the
file's own data; it has never been synced (``last_synced_at`` is NULL), so the
source sync jobs enrich it like any series they have not seen.

Modes: ``merge`` (default) keeps, for a series in both, the entry updated last (a
file entry without a date counts as written now, as MAL's ``update_on_import``
asks); ``replace`` makes the list exactly the file. ``dry_run`` reports without
writing. Versions come from ``users.progress_seq`` like every entry write, and each
written entry is published on ``progress:<user_id>`` after the commit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from mangahub.bus import EventBus
from mangahub.domain.enums import MangaStatus
from mangahub.domain.errors import NotFound
from mangahub.domain.schemas import EntryPublic, MangaSummary, Schema
from mangahub.lists import CatalogKey, ImportedEntry, MatchIndex, match_entry, parse_list
from mangahub.lists.errors import ListValueError
from mangahub.lists.records import SeriesRef
from mangahub.readmodels.catalog import publish_catalog_changed
from mangahub.services._common import publish_all_after_commit, recompute_averages
from mangahub.services.catalog import build_search_text, slugify, unique_slug
from mangahub.services.catalog.writes import lock_catalog
from mangahub.services.entry_writes import check_changes
from mangahub.sources.titles import normalize_title
from mangahub.storage.database import Database
from mangahub.storage.models import Genre, Manga, MangaGenre, ReadingEntry, User
from mangahub.storage.types import utcnow

IMPORT_DEVICE = "import"
# Rows per statement and per publish batch.
_CHUNK = 500
_ENTRY_COLUMNS = (
    "status", "chapter", "volume", "score", "started_on", "finished_on", "rereads",
    "rereading", "notes", "added_at", "updated_at", "device", "version",
)  # fmt: skip


class ImportMode(StrEnum):
    MERGE = "merge"
    REPLACE = "replace"


class SkippedEntry(Schema):
    title: str
    reason: str


class ImportReport(Schema):
    """What an import did (or, with dry_run, would do)."""

    format: str
    mode: ImportMode
    dry_run: bool
    entries_in_file: int
    imported: int  # entries new to the list
    updated: int  # entries that replaced the reader's own
    created_series: int
    removed: int  # replace mode: entries not in the file
    skipped: list[SkippedEntry]


@dataclass(slots=True)
class _Planned:
    manga_id: int
    entry: ImportedEntry


class _DryRun(Exception):
    """Unwinds the transaction of a dry run, carrying its report."""

    def __init__(self, report: ImportReport) -> None:
        self.report = report


class ListImportService:
    def __init__(self, db: Database, bus: EventBus) -> None:
        self._db = db
        self._bus = bus

    async def import_file(
        self,
        user_id: uuid.UUID,
        data: bytes,
        *,
        mode: ImportMode = ImportMode.MERGE,
        dry_run: bool = False,
    ) -> ImportReport:
        """Import ``data``; raises a 4xx domain error and writes nothing when the file
        cannot be read or holds a value no entry may have."""
        # Parsing is CPU work on up to 50 MiB: keep the event loop answering.
        parsed = await asyncio.to_thread(parse_list, data)
        for entry in parsed.entries:
            _check_entry(entry)
        try:
            async with self._db.session() as s:
                report, written = await _apply(
                    s, self._db.dialect, user_id, parsed.entries, mode, dry_run
                )
                report.format = parsed.format.value
                if dry_run:
                    raise _DryRun(report)
        except _DryRun as done:
            return done.report
        # New series, learned ids and moved averages: the catalog read model refreshes.
        await publish_catalog_changed(self._bus)
        await self._publish(user_id, written)
        return report

    async def _publish(self, user_id: uuid.UUID, manga_ids: Sequence[int]) -> None:
        topic = f"progress:{user_id}"
        for start in range(0, len(manga_ids), _CHUNK):
            async with self._db.session() as s:
                events = await _entry_events(s, user_id, manga_ids[start : start + _CHUNK])
            await publish_all_after_commit(
                self._bus, [(topic, {"type": "progress", "data": data}) for data in events]
            )


# The columns of EntryPublic and of its series summary, read with plain selects: an
# import publishes thousands of entries, and ORM objects would cost most of its time.
_ENTRY_FIELDS = [name for name in EntryPublic.model_fields if name != "manga"]
_SUMMARY_FIELDS = [name for name in MangaSummary.model_fields if name != "genres"]


async def _entry_events(
    s: AsyncSession, user_id: uuid.UUID, manga_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """The stored entries as every door serializes them (EntryPublic as JSON)."""
    columns = [getattr(ReadingEntry, n) for n in _ENTRY_FIELDS]
    columns += [getattr(Manga, n) for n in _SUMMARY_FIELDS]
    rows = await s.execute(
        select(*columns)
        .join(Manga, Manga.id == ReadingEntry.manga_id)
        .where(ReadingEntry.user_id == user_id, ReadingEntry.manga_id.in_(manga_ids))
        .order_by(ReadingEntry.version)
    )
    genres: dict[int, list[str]] = {}
    named = await s.execute(
        select(MangaGenre.manga_id, Genre.name)
        .join(Genre, Genre.id == MangaGenre.genre_id)
        .where(MangaGenre.manga_id.in_(manga_ids))
        .order_by(Genre.name)
    )
    for manga_id, name in named.all():
        genres.setdefault(manga_id, []).append(name)
    events = []
    split = len(_ENTRY_FIELDS)
    for row in rows.all():
        summary = dict(zip(_SUMMARY_FIELDS, row[split:], strict=True))
        summary["genres"] = genres.get(summary["id"], [])
        entry = dict(zip(_ENTRY_FIELDS, row[:split], strict=True))
        entry["manga"] = summary
        events.append(EntryPublic.model_validate(entry).model_dump(mode="json"))
    return events


def _changes(entry: ImportedEntry) -> dict[str, Any]:
    return {
        "status": entry.status,
        "chapter": entry.chapter,
        "volume": entry.volume or 0,
        "score": entry.score,
        "started_on": entry.started_on,
        "finished_on": entry.finished_on,
        "rereads": entry.rereads,
        "rereading": entry.rereading,
        "notes": entry.notes or "",
    }


def _check_entry(entry: ImportedEntry) -> None:
    """The same field rules as every other entry write."""
    problems = check_changes(_changes(entry))
    if problems:
        first = problems[0]
        raise ListValueError(
            f"{first['field']} {first['message']}",
            title=entry.title,
            field=first["field"],
            value=_changes(entry)[first["field"]],
        )


async def _apply(
    s: AsyncSession,
    dialect: str,
    user_id: uuid.UUID,
    entries: Sequence[ImportedEntry],
    mode: ImportMode,
    dry_run: bool,
) -> tuple[ImportReport, list[int]]:
    # Series may be created: the catalog lock comes first in the transaction.
    await lock_catalog(s, dialect)
    # The reader's row lock (PostgreSQL) keeps their other writes out until the
    # import commits, so merge decisions are made on the entries it overwrites.
    if await s.scalar(select(User.id).where(User.id == user_id).with_for_update()) is None:
        raise NotFound("user not found")
    keys, slugs = await _catalog(s)
    index = MatchIndex.build(keys.values())
    skipped: list[SkippedEntry] = []
    planned, created = await _resolve(s, index, slugs, entries, skipped)
    await _fill_ids(s, keys, index, planned)
    current = await _current(s, user_id)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    imported = updated = 0
    touched_scores: set[int] = set()
    for plan in planned:
        before = current.get(plan.manga_id)
        entry = plan.entry
        if before is not None and mode is ImportMode.MERGE and _kept(before, entry):
            skipped.append(SkippedEntry(title=entry.title, reason="your entry is newer"))
            continue
        if before is None:
            imported += 1
        else:
            updated += 1
        if (before or {}).get("score") != entry.score:
            touched_scores.add(plan.manga_id)
        added_at = entry.added_at or (before["added_at"] if before else None) or now
        rows.append(
            {
                "user_id": user_id,
                "manga_id": plan.manga_id,
                **_changes(entry),
                "status": entry.status.value,
                "chapter": round(entry.chapter, 2) + 0.0,
                "added_at": added_at,
                "updated_at": entry.updated_at or now,
                "device": entry.device or IMPORT_DEVICE,
            }
        )
    removed = 0
    if mode is ImportMode.REPLACE:
        keep = {p.manga_id for p in planned}
        gone = [m for m in current if m not in keep]
        touched_scores.update(m for m in gone if current[m]["score"] is not None)
        removed = len(gone)
        for start in range(0, len(gone), _CHUNK):
            await s.execute(
                delete(ReadingEntry)
                .where(
                    ReadingEntry.user_id == user_id,
                    ReadingEntry.manga_id.in_(gone[start : start + _CHUNK]),
                )
                .execution_options(synchronize_session=False)
            )
    if rows:
        await _write_entries(s, dialect, user_id, rows)
    await (await s.connection()).run_sync(recompute_averages, touched_scores)
    report = ImportReport(
        format="",
        mode=mode,
        dry_run=dry_run,
        entries_in_file=len(entries),
        imported=imported,
        updated=updated,
        created_series=created,
        removed=removed,
        skipped=skipped,
    )
    return report, [r["manga_id"] for r in rows]


def _kept(before: dict[str, Any], entry: ImportedEntry) -> bool:
    """Merge: the reader's own entry stays when it was updated after the file's."""
    theirs: datetime | None = entry.updated_at
    return theirs is not None and before["updated_at"] >= theirs


async def _catalog(s: AsyncSession) -> tuple[dict[int, CatalogKey], set[str]]:
    rows = await s.execute(
        select(
            Manga.id,
            Manga.title,
            Manga.alt_titles,
            Manga.mal_id,
            Manga.anilist_id,
            Manga.mangadex_id,
            Manga.slug,
        )
    )
    keys: dict[int, CatalogKey] = {}
    slugs: set[str] = set()
    for r in rows.all():
        keys[r[0]] = CatalogKey(r[0], r[1], tuple(r[2] or ()), r[3], r[4], r[5])
        slugs.add(r[6])
    return keys, slugs


async def _fill_ids(
    s: AsyncSession, keys: dict[int, CatalogKey], index: MatchIndex, planned: list[_Planned]
) -> None:
    """A matched series learns the MAL and AniList ids the file gives it when it has
    none and no other series holds them (later imports and MAL exports need them)."""
    learned: dict[str, list[dict[str, int]]] = {"mal_id": [], "anilist_id": []}
    for plan in planned:
        key = keys.get(plan.manga_id)
        if key is None:
            continue  # created by this import, with the file's ids
        ref = plan.entry.series
        # The index already names this series for ids it claimed by title.
        if (
            key.mal_id is None
            and ref.mal_id is not None
            and index.by_mal.get(ref.mal_id, plan.manga_id) == plan.manga_id
        ):
            index.by_mal[ref.mal_id] = plan.manga_id
            learned["mal_id"].append({"m_id": plan.manga_id, "m_value": ref.mal_id})
        if (
            key.anilist_id is None
            and ref.anilist_id is not None
            and index.by_anilist.get(ref.anilist_id, plan.manga_id) == plan.manga_id
        ):
            index.by_anilist[ref.anilist_id] = plan.manga_id
            learned["anilist_id"].append({"m_id": plan.manga_id, "m_value": ref.anilist_id})
    table = Manga.__table__
    assert isinstance(table, Table)
    conn = await s.connection()
    for column, params in learned.items():
        if params:
            # One executemany per column; updated_at stays (a new id is not an edit).
            stmt = (
                table.update()
                .where(table.c.id == bindparam("m_id"))
                .values({column: bindparam("m_value"), "updated_at": table.c.updated_at})
            )
            await conn.execute(stmt, params)


async def _resolve(
    s: AsyncSession,
    index: MatchIndex,
    slugs: set[str],
    entries: Sequence[ImportedEntry],
    skipped: list[SkippedEntry],
) -> tuple[list[_Planned], int]:
    """The series of every entry (created when nothing matches), one entry per series."""
    chosen: dict[int, ImportedEntry] = {}
    missing: dict[str, list[ImportedEntry]] = {}
    for entry in entries:
        found = match_entry(index, entry.series)
        if found is None:
            missing.setdefault(_identity(entry.series), []).append(entry)
        else:
            if found[1] == "title":
                index.claim(found[0], entry.series)
            _choose(chosen, found[0], entry, skipped)
    created = await _create_series(s, slugs, [group[0].series for group in missing.values()])
    for manga_id, group in zip(created, missing.values(), strict=True):
        # Their ids are taken now: no matched series may learn them (see _fill_ids).
        ref = group[0].series
        index.add(CatalogKey(manga_id, ref.title, ref.alt_titles, ref.mal_id, ref.anilist_id))
        for entry in group:
            _choose(chosen, manga_id, entry, skipped)
    return [_Planned(m, e) for m, e in chosen.items()], len(created)


def _identity(series: SeriesRef) -> str:
    """Entries of one unmatched series share this key (and so one created series)."""
    if series.mal_id is not None:
        return f"mal:{series.mal_id}"
    if series.anilist_id is not None:
        return f"anilist:{series.anilist_id}"
    if series.mangadex_id:
        return f"mangadex:{series.mangadex_id.lower()}"
    return f"title:{normalize_title(series.title) or series.title}"


def _choose(
    chosen: dict[int, ImportedEntry],
    manga_id: int,
    entry: ImportedEntry,
    skipped: list[SkippedEntry],
) -> None:
    """A file naming one series twice: the entry updated last wins (the later one
    on a tie), the other is reported."""
    other = chosen.get(manga_id)
    if other is not None:
        older, newer = (
            (entry, other)
            if (entry.updated_at and other.updated_at and entry.updated_at < other.updated_at)
            else (other, entry)
        )
        skipped.append(SkippedEntry(title=older.title, reason="the file lists this series twice"))
        entry = newer
    chosen[manga_id] = entry


async def _create_series(
    s: AsyncSession, slugs: set[str], series: Sequence[SeriesRef]
) -> list[int]:
    """Local series from the file's data, in order; their ids."""
    ids: list[int] = []
    now = utcnow()
    rows = [
        {
            "slug": unique_slug(slugify(ref.title), slugs),
            "title": ref.title,
            "alt_titles": list(ref.alt_titles),
            "authors": [],
            "status": MangaStatus.ONGOING.value,
            "total_chapters": ref.total_chapters,
            "description": "",
            "mal_id": ref.mal_id,
            "anilist_id": ref.anilist_id,
            "mangadex_id": ref.mangadex_id,
            "format": (ref.format.value if ref.format else "manga"),
            "volumes": ref.volumes,
            "search_text": build_search_text(ref.title, ref.alt_titles, (), ()),
            "created_at": now,
            "updated_at": now,
        }
        for ref in series
    ]
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        result = await s.execute(
            insert(Manga).returning(Manga.id, sort_by_parameter_order=True), chunk
        )
        ids.extend(result.scalars().all())
    return ids


async def _current(s: AsyncSession, user_id: uuid.UUID) -> dict[int, dict[str, Any]]:
    rows = await s.execute(
        select(
            ReadingEntry.manga_id,
            ReadingEntry.updated_at,
            ReadingEntry.added_at,
            ReadingEntry.score,
        ).where(ReadingEntry.user_id == user_id)
    )
    return {r[0]: {"updated_at": r[1], "added_at": r[2], "score": r[3]} for r in rows.all()}


async def _write_entries(
    s: AsyncSession, dialect: str, user_id: uuid.UUID, rows: list[dict[str, Any]]
) -> None:
    """Upsert the rows with fresh versions from the user's counter, in file order."""
    last = await s.scalar(
        update(User)
        .where(User.id == user_id)
        .values(progress_seq=User.progress_seq + len(rows))
        .returning(User.progress_seq)
        .execution_options(synchronize_session=False)
    )
    assert last is not None  # the user was checked in this transaction
    first = last - len(rows) + 1
    for offset, row in enumerate(rows):
        row["version"] = first + offset
    # One compiled statement, many parameter sets: the driver batches them.
    table = ReadingEntry.__table__
    assert isinstance(table, Table)
    insert_ = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    stmt = insert_.on_conflict_do_update(
        index_elements=["user_id", "manga_id"],
        set_={name: insert_.excluded[name] for name in _ENTRY_COLUMNS},
    )
    conn = await s.connection()
    for start in range(0, len(rows), _CHUNK):
        await conn.execute(stmt, rows[start : start + _CHUNK])
