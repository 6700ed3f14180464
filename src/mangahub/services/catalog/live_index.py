"""The search index and the in-memory catalog table kept current with the database.

Before a search one cheap query reads the catalog's stamp (row count and latest
``updated_at``): on the first search after this process changed the catalog, else
at most every STAMP_INTERVAL seconds. When it moved, the series changed since the
previous stamp (less a margin for writers whose clocks or transactions lag) are
read again, and a count that still differs means series were deleted: the indexed
ids are then checked against the table. Every writer of the catalog, in this process
or another (imports, admin edits, source sync, another server on the same database),
is seen this way on both storage paths, without a message having to reach us: this
process's own changes at once, other writers' within STAMP_INTERVAL.

Some writes leave ``updated_at`` alone (a score moves ``average_rating`` only), so
the stamp cannot see them: :meth:`LiveIndex.changed` takes the ``catalog.changed``
events (see :mod:`mangahub.readmodels.catalog`), and the next search first reads
exactly the series they name again (all of them for an event that names none, or
when events may have been missed). A search never answers while such a re-read is
pending or running, so after a write is acknowledged no search of this process
serves the series as it was before.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mangahub.readmodels.catalog import SUMMARY_COLUMNS
from mangahub.services.catalog.index import Entry, SearchIndex
from mangahub.services.catalog.table import CatalogTable, Listing
from mangahub.storage.database import Database
from mangahub.storage.models import Genre, Manga, MangaGenre

# Writes committed out of updated_at order by at most this much are still seen.
REREAD_MARGIN = timedelta(seconds=60)
# Matches one search ranks at most; enough for any reader.
MAX_MATCHES = 5000

# Text queries whose matches are remembered, and the ids they may hold in all
# (8 bytes each: at most 8 MB; the ids themselves are the index's).
MAX_REMEMBERED = 4096
MAX_REMEMBERED_IDS = 1_000_000

# More series than this are read again all at once (not as a list of ids).
MAX_NAMED = 1000

# How stale a search may be about writes of other processes (or of code that
# bypasses CatalogService); this process's catalog writes invalidate at once.
STAMP_INTERVAL = 0.25

Stamp = tuple[int, datetime | None]
Reader = AsyncSession | AsyncConnection


class LiveIndex:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._index = SearchIndex()
        self.table = CatalogTable()
        self._stamp: Stamp | None = None
        self._lock = asyncio.Lock()
        self._checked_at = -math.inf
        # Series named by change events and not read again yet; True: all of them.
        self._pending: set[int] = set()
        self._pending_all = False
        # A re-read is running that searches must wait for (see due()).
        self._awaited = False
        # (query, ranked) → matching ids, most recent last (see matching_ids).
        self._matched: OrderedDict[tuple[str, bool], list[int]] = OrderedDict()
        self._matched_ids = 0

    def invalidate(self) -> None:
        """The catalog changed (committed): check the stamp before the next search."""
        self._checked_at = -math.inf

    def changed(self, manga_ids: Iterable[int] | None) -> None:
        """These series changed (None: any may have): read them again before the next
        search answers. Synchronous, for the bus's tap."""
        if manga_ids is None:
            self._pending_all = True
        else:
            self._pending.update(manga_ids)
        self.invalidate()

    async def search(self, s: Reader, query: str) -> list[Entry]:
        """The series matching ``query``, best first, as of this transaction (``s``)."""
        await self.refresh(s)
        return self.matches(query)

    def matches(self, query: str) -> list[Entry]:
        """The series matching ``query``, best first, as indexed now."""
        found = (self._index.entry(i) for i in self._index.search(query, MAX_MATCHES))
        return [entry for entry in found if entry is not None]

    def matching_ids(self, query: str, *, ranked: bool) -> list[int]:
        """The ids of :meth:`matches`; best first only if ``ranked``. Remembered
        until the index changes: paging or re-sorting one query repeats it."""
        key = (query, ranked)
        found = self._matched.get(key)
        if found is None:
            if ranked:
                found = self._index.search(query, MAX_MATCHES)
            else:
                found = self._index.matching(query, MAX_MATCHES)
            self._matched[key] = found
            self._matched_ids += len(found)
            while len(self._matched) > MAX_REMEMBERED or self._matched_ids > MAX_REMEMBERED_IDS:
                self._matched_ids -= len(self._matched.popitem(last=False)[1])
        else:
            self._matched.move_to_end(key)
        return found

    def due(self) -> bool:
        """Whether the next search must first look at the database, or wait for a
        re-read of changes announced before it (not for a periodic stamp check)."""
        return self._awaited or self._stale()

    def _stale(self) -> bool:
        return (
            self._pending_all
            or bool(self._pending)
            or time.monotonic() - self._checked_at >= STAMP_INTERVAL
        )

    async def refresh(self, s: Reader) -> None:
        if not self.due():
            return
        async with self._lock:
            if self._stale():
                await self._catch_up(s)

    async def refresh_in(self, session: Callable[[], AbstractAsyncContextManager[Reader]]) -> None:
        """:meth:`refresh` in a ``session()`` opened only if still due once this search's
        turn comes (searches that waited for another's re-read need none)."""
        if not self.due():
            return
        async with self._lock:
            if self._stale():
                async with session() as s:
                    await self._catch_up(s)

    async def _catch_up(self, s: Reader) -> None:
        announced = self._checked_at == -math.inf  # by invalidate() or changed()
        self._checked_at = time.monotonic()  # before the reads: a change meanwhile wins
        named, self._pending = self._pending, set()
        everything, self._pending_all = self._pending_all, False
        self._awaited = announced or self._stamp is None or everything or bool(named)
        try:
            stamp = await _stamp(s)
            if everything:
                await self._read_everything(s, stamp)
            elif stamp != self._stamp:
                await self._read_changed(s, stamp)
            if named and not everything:
                await self._read_again(s, named)
        except BaseException:
            # Not read after all: the next search tries again.
            self._pending |= named
            self._pending_all |= everything
            self.invalidate()
            raise
        finally:
            self._awaited = False
        self._index.prepare()

    async def _read_changed(self, s: Reader, stamp: Stamp) -> None:
        previous = self._stamp
        since = None if previous is None or previous[1] is None else previous[1] - REREAD_MARGIN
        self._put(await _series(s, None if since is None else Manga.updated_at >= since))
        if len(self._index) != stamp[0]:
            stored = set((await s.scalars(select(Manga.id))).all())
            for gone in self._index.ids() - stored:
                self._remove(gone)
            missing = stored - self._index.ids()
            if missing:
                self._put(await _series(s, Manga.id.in_(sorted(missing))))
        self._stamp = stamp

    async def _read_everything(self, s: Reader, stamp: Stamp) -> None:
        """Any series may have changed: the ones whose ``updated_at`` moved are read
        again as for a stamp change, and so is every series whose ``average_rating``
        differs, the one listed field its writers change with ``updated_at`` kept
        (scores; see the ``updated_at=Manga.updated_at`` writers). Cheaper than
        reading the whole catalog again after every import."""
        await self._read_changed(s, stamp)
        rows = (await s.execute(select(Manga.id, Manga.average_rating))).all()
        ratings: dict[int, float | None] = dict(rows)
        for gone in self._index.ids() - ratings.keys():
            self._remove(gone)
        stale = sorted(i for i, rating in ratings.items() if not self.table.rated(i, rating))
        if stale:
            where = Manga.id.in_(stale) if len(stale) <= MAX_NAMED else None
            self._put(await _series(s, where))

    async def _read_again(self, s: Reader, named: set[int]) -> None:
        where = Manga.id.in_(sorted(named)) if len(named) <= MAX_NAMED else None
        found = await _series(s, where)
        self._put(found)
        for gone in named - {entry.id for entry, _ in found}:
            self._remove(gone)

    def _put(self, series: list[tuple[Entry, Listing]]) -> None:
        # Only changed entries are indexed again (a full re-read keeps the rest).
        changed = [entry for entry, _ in series if self._index.entry(entry.id) != entry]
        if changed:
            self._index.put(changed)
            self._forget_matches()
        self.table.put(listing for _, listing in series)

    def _remove(self, series: int) -> None:
        self._index.remove(series)
        self.table.remove(series)
        self._forget_matches()

    def _forget_matches(self) -> None:
        self._matched.clear()
        self._matched_ids = 0


async def _stamp(s: Reader) -> Stamp:
    count, latest = (await s.execute(select(func.count(), func.max(Manga.updated_at)))).one()
    return int(count), latest


async def _series(s: Reader, where: ColumnElement[bool] | None) -> list[tuple[Entry, Listing]]:
    """The index entry and the listing of each series ``where`` selects."""
    stmt = select(*SUMMARY_COLUMNS, Manga.alt_titles, Manga.year, Manga.updated_at)
    stmt = stmt.order_by(Manga.id)
    if where is not None:
        stmt = stmt.where(where)
    rows: Sequence[Any] = (await s.execute(stmt)).all()
    if not rows:
        return []
    genres = await _genre_names(s, where)
    found = []
    for row in rows:
        names = genres.get(row.id, [])
        entry = Entry(
            id=row.id,
            title=row.title,
            alt_titles=tuple(row.alt_titles or ()),
            authors=tuple(row.authors or ()),
            genres=tuple(names),
            popularity=row.popularity or 0,
            status=row.status,
            format=row.format,
            year=row.year,
        )
        fields = {column.key: getattr(row, column.key) for column in SUMMARY_COLUMNS}
        fields["genres"] = names
        found.append((entry, Listing(fields, row.year, row.updated_at)))
    return found


async def _genre_names(s: Reader, where: ColumnElement[bool] | None) -> dict[int, list[str]]:
    """Each series' genre names, by name (as the database orders them: the order
    the summaries read one by one have)."""
    stmt = select(MangaGenre.manga_id, Genre.name).join(Genre, Genre.id == MangaGenre.genre_id)
    if where is not None:
        stmt = stmt.join(Manga, Manga.id == MangaGenre.manga_id).where(where)
    names: defaultdict[int, list[str]] = defaultdict(list)
    for manga_id, name in (await s.execute(stmt.order_by(Genre.name))).all():
        names[manga_id].append(name)
    return names
