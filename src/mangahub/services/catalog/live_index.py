"""The search index kept current with the database it indexes.

Before a search one cheap query reads the catalog's stamp (row count and latest
``updated_at``): on the first search after this process changed the catalog, else
at most every STAMP_INTERVAL seconds. When it moved, the series changed since the
previous stamp (less a margin for writers whose clocks or transactions lag) are
read again, and a count that still differs means series were deleted: the indexed
ids are then checked against the table. Every writer of the catalog, in this process
or another (imports, admin edits, source sync, another server on the same database),
is seen this way on both storage paths, without a message having to reach us: this
process's own changes at once, other writers' within STAMP_INTERVAL.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mangahub.services.catalog.index import Entry, SearchIndex
from mangahub.storage.database import Database
from mangahub.storage.models import Genre, Manga, MangaGenre

# Writes committed out of updated_at order by at most this much are still seen.
REREAD_MARGIN = timedelta(seconds=60)
# Matches one search ranks at most; enough for any reader.
MAX_MATCHES = 5000

# How stale a search may be about writes of other processes (or of code that
# bypasses CatalogService); this process's catalog writes invalidate at once.
STAMP_INTERVAL = 0.25

Stamp = tuple[int, datetime | None]


class LiveIndex:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._index = SearchIndex()
        self._stamp: Stamp | None = None
        self._lock = asyncio.Lock()
        self._checked_at = -math.inf

    def invalidate(self) -> None:
        """The catalog changed (committed): check the stamp before the next search."""
        self._checked_at = -math.inf

    async def search(self, s: AsyncSession, query: str) -> list[Entry]:
        """The series matching ``query``, best first, as of this transaction (``s``)."""
        await self.refresh(s)
        found = (self._index.entry(i) for i in self._index.search(query, MAX_MATCHES))
        return [entry for entry in found if entry is not None]

    async def refresh(self, s: AsyncSession) -> None:
        checked = time.monotonic()
        if checked - self._checked_at < STAMP_INTERVAL:
            return
        self._checked_at = checked  # before the read: an invalidate() meanwhile wins
        stamp = await _stamp(s)
        if stamp == self._stamp:
            return
        async with self._lock:
            if stamp != self._stamp:
                await self._catch_up(s, stamp)

    async def _catch_up(self, s: AsyncSession, stamp: Stamp) -> None:
        previous = self._stamp
        since = None if previous is None or previous[1] is None else previous[1] - REREAD_MARGIN
        self._index.put(await _entries(s, None if since is None else Manga.updated_at >= since))
        if len(self._index) != stamp[0]:
            stored = set((await s.scalars(select(Manga.id))).all())
            for gone in self._index.ids() - stored:
                self._index.remove(gone)
            missing = stored - self._index.ids()
            if missing:
                self._index.put(await _entries(s, Manga.id.in_(sorted(missing))))
        self._index.prepare()
        self._stamp = stamp


async def _stamp(s: AsyncSession) -> Stamp:
    count, latest = (await s.execute(select(func.count(), func.max(Manga.updated_at)))).one()
    return int(count), latest


async def _entries(s: AsyncSession, where: ColumnElement[bool] | None) -> list[Entry]:
    stmt = select(
        Manga.id,
        Manga.title,
        Manga.alt_titles,
        Manga.authors,
        Manga.popularity,
        Manga.status,
        Manga.format,
        Manga.year,
    ).order_by(Manga.id)
    if where is not None:
        stmt = stmt.where(where)
    rows: Sequence[Any] = (await s.execute(stmt)).all()
    if not rows:
        return []
    genres = await _genre_names(s, where)
    return [
        Entry(
            id=row.id,
            title=row.title,
            alt_titles=tuple(row.alt_titles or ()),
            authors=tuple(row.authors or ()),
            genres=tuple(genres.get(row.id, ())),
            popularity=row.popularity or 0,
            status=row.status,
            format=row.format,
            year=row.year,
        )
        for row in rows
    ]


async def _genre_names(s: AsyncSession, where: ColumnElement[bool] | None) -> dict[int, list[str]]:
    stmt = select(MangaGenre.manga_id, Genre.name).join(Genre, Genre.id == MangaGenre.genre_id)
    if where is not None:
        stmt = stmt.join(Manga, Manga.id == MangaGenre.manga_id).where(where)
    names: defaultdict[int, list[str]] = defaultdict(list)
    for manga_id, name in (await s.execute(stmt)).all():
        names[manga_id].append(name)
    return names
