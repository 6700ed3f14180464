"""The reader's list: one entry per user x series, written by every door.

"Library", "progress" and the user's rating are views of the same row
(``reading_entries``), so there is one status and it cannot drift. Every write goes
through one path (:meth:`ReadingListService.store_many`, the TCP group commit
included): :mod:`mangahub.services.entry_writes`, which applies the rules of SPEC
"Reading entry".

Versions come from a per-user counter (``users.progress_seq``) bumped in the same
transaction as the write. So a version is unique per user, grows with every write,
and "what changed since version N" is one indexed query (``changed_since``, used by
TCP ``sync``). On PostgreSQL the counter bump also takes the user's row lock, so one
user's writes commit in version order and read a stable current entry.

Events: after the transaction commits, each write is published on
``progress:<user_id>`` as ``{"type": "progress", "data": <EntryPublic as JSON>}``,
plus ``"origin"`` when the caller named itself (the TCP door skips its own writes).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select

from mangahub.bus import EventBus
from mangahub.domain.enums import EntrySort, ReadingStatus
from mangahub.domain.errors import MangaHubError
from mangahub.domain.schemas import EntryPublic, MangaSummary, RatingPublic
from mangahub.readmodels.catalog import (
    SUMMARY_COLUMNS,
    CatalogReadModel,
    publish_catalog_changed,
    summaries,
)
from mangahub.services._common import fetch_page, publish_all_after_commit, valid_id
from mangahub.services.entry_writes import (
    EntryWrite,
    Stored,
    StoredEntry,
    StoredOutcome,
    Summaries,
    WriteMode,
    WrittenSeries,
    announced,
    not_listed,
    progress_write,
    remove,
    store,
    written_series,
)
from mangahub.storage.database import Database
from mangahub.storage.models import Manga, ReadingEntry

_MAX_VERSION = 2**63 - 1
_SERIES = select(*SUMMARY_COLUMNS).where(Manga.id.in_(bindparam("ids", expanding=True)))

Outcome = EntryPublic | MangaHubError


class CommittedWrites:
    """A committed batch of writes whose outcomes and events are still to be made.

    :meth:`announce` makes them a slice at a time, in order: the TCP group commit
    announces one batch in slices while the next batch's transaction runs, so
    neither waits for the other."""

    __slots__ = ("_bus", "_summaries", "_writes", "_stored", "_series", "_topics")

    def __init__(
        self,
        bus: EventBus,
        summaries: Callable[[set[int], Mapping[int, float | None]], Awaitable[Summaries]],
        writes: Sequence[EntryWrite],
        stored: Stored,
    ) -> None:
        self._bus = bus
        self._summaries = summaries
        self._writes = writes
        self._stored = stored
        self._series: WrittenSeries | None = None  # loaded by the first slice
        self._topics: dict[int, str] = {}  # each user's topic, made once per batch

    async def announce(self, start: int, stop: int) -> list[StoredOutcome]:
        """The outcomes of writes ``start:stop``, their events published (call with
        consecutive slices, from 0)."""
        writes, stored = self._writes, self._stored
        series = self._series
        if series is None:
            found = await self._summaries(stored.manga_ids, stored.averages)
            series = self._series = written_series(found)
            if stored.averages:  # their average_rating moved
                await publish_catalog_changed(self._bus, *sorted(stored.averages))
        outcomes, events = announced(writes, stored, series, self._topics, start, stop)
        # All at once, so a Redis bus sends them in one pipeline (in this order).
        await publish_all_after_commit(self._bus, events)
        return outcomes


class ReadingListService:
    def __init__(
        self, db: Database, bus: EventBus, catalog: CatalogReadModel | None = None
    ) -> None:
        self._db = db
        self._bus = bus
        # Where the series summaries in written entries come from, when there is one
        # (what the rules need is read in the write's own transaction either way).
        self._catalog = catalog

    # --- writes ---------------------------------------------------------------------

    async def write(self, write: EntryWrite) -> EntryPublic:
        """Store one write and push it to the user's devices; raises its error."""
        (outcome,) = await self.write_many([write])
        if isinstance(outcome, MangaHubError):
            raise outcome
        return outcome

    async def add(
        self,
        user_id: uuid.UUID,
        manga_id: int,
        changes: Mapping[str, Any] | None = None,
        *,
        device: str | None = None,
    ) -> EntryPublic:
        """List a series; NotFound for an unknown manga, Conflict if already listed."""
        return await self.write(
            EntryWrite(user_id, manga_id, changes or {}, WriteMode.ADD, device=device)
        )

    async def update(
        self,
        user_id: uuid.UUID,
        manga_id: int,
        changes: Mapping[str, Any],
        *,
        device: str | None = None,
    ) -> EntryPublic:
        """Change any fields of a listed series; NotFound if it is not listed."""
        return await self.write(
            EntryWrite(user_id, manga_id, changes, WriteMode.UPDATE, device=device)
        )

    async def set_progress(
        self,
        user_id: uuid.UUID,
        manga_id: int,
        chapter: float,
        *,
        volume: int | None = None,
        status: ReadingStatus | None = None,
        device: str | None = None,
        origin: str | None = None,
    ) -> EntryPublic:
        """Write the reader's position; a series not listed yet is added as reading."""
        return await self.write(
            progress_write(
                user_id,
                manga_id,
                chapter,
                volume=volume,
                status=status,
                device=device,
                origin=origin,
            )
        )

    async def rate(self, user_id: uuid.UUID, manga_id: int, score: int) -> RatingPublic:
        """Set the entry's score (1–10), listing the series when it is not listed."""
        entry = await self.write(EntryWrite(user_id, manga_id, {"score": score}))
        return RatingPublic(manga_id=manga_id, score=score, updated_at=entry.updated_at)

    async def store_many(self, writes: Sequence[EntryWrite]) -> list[StoredOutcome]:
        """:meth:`write_many`, each stored write answered as the JSON its TCP ack and
        pushes carry (the schema is built only if asked for)."""
        committed = await self.commit_many(writes)
        return await committed.announce(0, len(writes))

    async def commit_many(self, writes: Sequence[EntryWrite]) -> CommittedWrites:
        """The TCP group commit's transaction: the writes are stored once this returns;
        their outcomes and events come from :meth:`CommittedWrites.announce`."""
        stored = await self._db.write(store, writes)
        return CommittedWrites(self._bus, self._summaries, writes, stored)

    async def write_many(self, writes: Sequence[EntryWrite]) -> list[Outcome]:
        """Store many writes in one transaction; one outcome per write, in order. A
        write that breaks a rule gets its error and does not affect the others; later
        writes of the same entry apply on top of earlier ones and get higher versions."""
        outcomes = await self.store_many(writes)
        return [o.entry if isinstance(o, StoredEntry) else o for o in outcomes]

    async def remove(self, user_id: uuid.UUID, manga_id: int) -> None:
        """Delete the entry with its progress and score; NotFound if it is not listed."""
        if not valid_id(manga_id) or not await self._db.write(remove, user_id, manga_id):
            raise not_listed(manga_id)
        await publish_catalog_changed(self._bus, manga_id)  # its score left the average

    async def _summaries(
        self, manga_ids: set[int], averages: Mapping[int, float | None]
    ) -> Summaries:
        """The summaries written entries embed, with the averages their transaction
        recomputed (a cached summary may not have them yet)."""
        manga = await _load_summaries(self._db, self._catalog, manga_ids)
        for manga_id, average in averages.items():
            summary = manga.get(manga_id)
            if summary is not None:
                manga[manga_id] = {**summary, "average_rating": average}
        return manga

    # --- reads ----------------------------------------------------------------------

    async def get(self, user_id: uuid.UUID, manga_id: int) -> EntryPublic:
        """The user's entry for one series; NotFound when it is not listed."""
        row = None
        if valid_id(manga_id):
            async with self._db.session() as s:
                row = await s.get(ReadingEntry, (user_id, manga_id))
        if row is None:
            raise not_listed(manga_id)
        return EntryPublic.model_validate(row)

    async def list(
        self,
        user_id: uuid.UUID,
        *,
        status: ReadingStatus | None = None,
        q: str | None = None,
        sort_by: EntrySort = EntrySort.UPDATED,
        descending: bool | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> tuple[builtins.list[EntryPublic], int]:
        """A page of the user's list, filtered and sorted, and the total. Every sort
        is descending except title; ties are broken by manga id."""
        stmt = select(ReadingEntry).where(ReadingEntry.user_id == user_id)
        if status is not None:
            stmt = stmt.where(ReadingEntry.status == status.value)
        if sort_by is EntrySort.TITLE or q:
            stmt = stmt.join(Manga, Manga.id == ReadingEntry.manga_id)
        if q:
            stmt = stmt.where(func.lower(Manga.title).contains(q.lower(), autoescape=True))
        desc = sort_by is not EntrySort.TITLE if descending is None else descending
        stmt = stmt.order_by(*_ordering(sort_by, desc))
        async with self._db.session() as s:
            rows, total = await fetch_page(s, stmt, page, page_size)
        return [EntryPublic.model_validate(row[0]) for row in rows], total

    async def changed_since(
        self, user_id: uuid.UUID, since_version: int
    ) -> builtins.list[EntryPublic]:
        """Entries written after ``since_version``, oldest first (catch-up after reconnect)."""
        since = min(max(since_version, 0), _MAX_VERSION)
        stmt = (
            select(ReadingEntry)
            .where(ReadingEntry.user_id == user_id, ReadingEntry.version > since)
            .order_by(ReadingEntry.version)
        )
        async with self._db.session() as s:
            rows = (await s.scalars(stmt)).all()
        return [EntryPublic.model_validate(r) for r in rows]


def _ordering(sort_by: EntrySort, desc: bool) -> list[ColumnElement[Any]]:
    column: Any = {
        EntrySort.UPDATED: ReadingEntry.updated_at,
        EntrySort.TITLE: func.lower(Manga.title),
        EntrySort.SCORE: ReadingEntry.score,
        EntrySort.PROGRESS: ReadingEntry.chapter,
        EntrySort.ADDED: ReadingEntry.added_at,
    }[sort_by]
    key = column.desc() if desc else column.asc()
    if sort_by is EntrySort.SCORE:
        key = key.nulls_last()  # "not scored" is neither the best nor the worst
    tie = ReadingEntry.manga_id.desc() if desc else ReadingEntry.manga_id.asc()
    return [key, tie]


def _summary_json(summary: MangaSummary) -> dict[str, Any]:
    """A series summary as written entries embed it (shared: never edited)."""
    return summary.model_dump(mode="json")


async def _load_summaries(
    db: Database, catalog: CatalogReadModel | None, manga_ids: set[int]
) -> Summaries:
    """The summaries of these series: from the catalog read model when it has them
    (it drops a series on every ``catalog.changed``), else by Core rows. Unknown
    series are left out."""
    if not manga_ids:
        return {}

    async def load(ids: builtins.list[int]) -> Summaries:
        async with db.read() as conn:
            rows = (await conn.execute(_SERIES, {"ids": ids})).all()
            return {m.id: _summary_json(m) for m in await summaries(conn, rows)}

    if catalog is None:
        return await load(builtins.list(manga_ids))
    return await catalog.many(manga_ids, "entry_summary", load)
