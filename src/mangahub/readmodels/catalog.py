"""The catalog read model: series details, search pages and the genre list, rendered
once (JSON bytes for HTTP, the protobuf message for gRPC) and served from a bounded
per-process cache until a writer says they changed.

Invalidation, the contract for every writer of catalog data
------------------------------------------------------------
After its commit and before acknowledging the write, a writer publishes on the event
bus topic :data:`CATALOG_CHANGED` (``"catalog.changed"``), and waits until every
process has handled it (``EventBus.publish_confirmed``)::

    await publish_catalog_changed(bus, manga_id, ...)

``catalog_changed()`` with no id means "anything may have changed" (bulk imports,
new genres). Any event also drops every search page and the genre list, since one
series' rating or title moves it between pages. Writers so far: admin create, edit
and delete, imports (bundled seed, sync jobs, list imports through the catalog),
scores (``average_rating``) and chapter checks.

How a process never serves a stale series after a write is acknowledged:

* The bus calls this model's listener synchronously (``EventBus.tap``): inside the
  writer's own ``publish``, and in every other process as soon as its Redis reader
  reads the message, without a queue or task hop in between. Only then does that
  process confirm the event, and the writer answers once every process has.
* A cold read records the invalidation generation before it queries and stores its
  answer only if no invalidation arrived meanwhile (its snapshot may predate the
  commit).
* While the bus cannot hear other processes (Redis lost) nothing is cached, and a
  loss or a reconnect drops everything (events may have been missed meanwhile).
* Entries also expire after ``ttl`` seconds, a bound on staleness should all of that
  fail.

A cold series read is one Core statement (the row and its genre names), not an ORM
entity with a selectin load.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import orjson
from sqlalchemy import Integer, Row, Select, bindparam, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from mangahub.bus import Event, EventBus
from mangahub.domain.schemas import MangaDetails, MangaSummary
from mangahub.services._common import manga_not_found, publish_after_commit, valid_id
from mangahub.storage.database import Database
from mangahub.storage.models import Genre, Manga, MangaGenre

T = TypeVar("T")

CATALOG_CHANGED = "catalog.changed"
DEFAULT_MAX_SERIES = 10_000
DEFAULT_MAX_PAGES = 2_000
DEFAULT_TTL = 300.0


def catalog_changed(*manga_ids: int) -> Event:
    """The :data:`CATALOG_CHANGED` event for these series (none: the whole catalog)."""
    return {"manga_ids": list(manga_ids)} if manga_ids else {"all": True}


def named(event: Event | None) -> list[int] | None:
    """The series a :data:`CATALOG_CHANGED` event names; None when any may have
    changed (an event for the whole catalog, or events that may have been missed)."""
    ids = None if event is None else event.get("manga_ids")
    return ids if isinstance(ids, list) else None


async def publish_catalog_changed(bus: EventBus | None, *manga_ids: int) -> None:
    """What a catalog writer calls after its commit, before it answers: it returns once
    every process has dropped what the change made stale."""
    if bus is not None:
        await publish_after_commit(
            bus, CATALOG_CHANGED, catalog_changed(*manga_ids), confirmed=True
        )


class _Lru:
    """A bounded LRU of values with an expiry each."""

    def __init__(self, max_entries: int, ttl: float) -> None:
        self.data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl

    def get(self, key: Hashable) -> Any | None:
        item = self.data.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            del self.data[key]
            return None
        self.data.move_to_end(key)
        return item[1]

    def put(self, key: Hashable, value: Any) -> None:
        self.data[key] = (time.monotonic() + self._ttl, value)
        self.data.move_to_end(key)
        if len(self.data) > self._max:
            self.data.popitem(last=False)


class CatalogReadModel:
    """Per-process cache of rendered catalog answers; see the module docstring."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        *,
        max_series: int = DEFAULT_MAX_SERIES,
        max_pages: int = DEFAULT_MAX_PAGES,
        ttl: float = DEFAULT_TTL,
    ) -> None:
        self._db = db
        self._bus = bus
        # Series id → {view name: rendered value}: one LRU slot per series, so an
        # invalidation drops every door's rendering of it at once.
        self._series = _Lru(max_series, ttl)
        self._pages = _Lru(max_pages, ttl)
        self._max_series = max_series
        self._details_stmt = _details_select(db.dialect).where(
            Manga.id == bindparam("manga_id", type_=Integer)
        )
        self._all_details_stmt = (
            _details_select(db.dialect)
            .order_by(Manga.popularity.desc(), Manga.id)
            .limit(bindparam("limit", type_=Integer))
        )
        self.generation = 0

    async def start(self) -> None:
        await self._bus.tap(CATALOG_CHANGED, self._on_event)

    # --- reads ------------------------------------------------------------------------

    def cached(self, manga_id: int, view: str) -> Any | None:
        """The ready rendering of one series if this process has it (no I/O at all)."""
        views: dict[str, Any] | None = self._series.get(manga_id)
        return None if views is None else views.get(view)

    async def series(self, manga_id: int, view: str, render: Callable[[MangaDetails], T]) -> T:
        """``render(details)`` of one series, cached per ``view``; NotFound if unknown."""
        views: dict[str, Any] | None = self._series.get(manga_id)
        if views is not None and view in views:
            return views[view]  # type: ignore[no-any-return]
        generation = self.generation
        value = render(await self.load_details(manga_id))
        if self._may_store(generation):
            views = self._series.get(manga_id)
            if views is None:
                views = {}
                self._series.put(manga_id, views)
            views[view] = value
        return value

    async def many(
        self,
        manga_ids: Iterable[int],
        view: str,
        load: Callable[[list[int]], Awaitable[dict[int, T]]],
    ) -> dict[int, T]:
        """``view`` of many series at once: the cached ones, and ``load(missing ids)``
        for the rest in one go (cached like :meth:`series`). Unknown ids are left out."""
        found: dict[int, T] = {}
        missing: list[int] = []
        for manga_id in manga_ids:
            views: dict[str, Any] | None = self._series.get(manga_id)
            if views is not None and view in views:
                found[manga_id] = views[view]
            else:
                missing.append(manga_id)
        if missing:
            generation = self.generation
            loaded = await load(missing)
            if self._may_store(generation):
                for manga_id, value in loaded.items():
                    views = self._series.get(manga_id)
                    if views is None:
                        views = {}
                        self._series.put(manga_id, views)
                    views[view] = value
            found.update(loaded)
        return found

    async def page(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """A cached answer that any catalog change may alter (search pages, genres)."""
        found = self._pages.get(key)
        if found is not None:
            return found  # type: ignore[no-any-return]
        generation = self.generation
        value = await load()
        if self._may_store(generation):
            self._pages.put(key, value)
        return value

    async def warm(self, views: Mapping[str, Callable[[MangaDetails], Any]]) -> int:
        """Fill the series cache, up to its bound and most popular first, rendered for
        every one of ``views`` (view name → render), from one statement; returns how
        many series it stored. Like a cold read, a load that an invalidation overtook
        is not kept (tried once more, then left to the cold reads)."""
        for _ in range(2):
            generation = self.generation
            if not self._may_store(generation):
                return 0  # nothing is cached while other processes' events cannot arrive
            found = await self.load_all_details(self._max_series)
            # No await from here on: no event can slip in between check and store.
            if not self._may_store(generation):
                continue
            for details in found:
                self._series.put(
                    details.id, {view: render(details) for view, render in views.items()}
                )
            return len(found)
        return 0

    async def load_all_details(self, limit: int) -> list[MangaDetails]:
        """Up to ``limit`` series, most popular first, in one statement."""
        async with self._db.read() as conn:
            rows = (await conn.execute(self._all_details_stmt, {"limit": limit})).all()
        return [self._details(row) for row in rows]

    async def load_details(self, manga_id: int) -> MangaDetails:
        """One series from the database, in one statement; NotFound if unknown."""
        if not valid_id(manga_id):
            raise manga_not_found(manga_id)
        async with self._db.read() as conn:
            row = (await conn.execute(self._details_stmt, {"manga_id": manga_id})).one_or_none()
        if row is None:
            raise manga_not_found(manga_id)
        return self._details(row)

    def _details(self, row: Row[Any]) -> MangaDetails:
        values = dict(row._mapping)
        names = values.pop("genre_names")
        # JSON text from SQLite; PostgreSQL's json_agg may arrive decoded already.
        genres = orjson.loads(names) if isinstance(names, str | bytes) else names or []
        if not self._db.is_sqlite:
            values["genres"] = genres  # ordered by the database's collation
        else:
            values["genres"] = sorted(genres)  # SQLite's BINARY order is code point order
        return MangaDetails.model_validate(values)

    # --- invalidation -----------------------------------------------------------------

    def _may_store(self, generation: int) -> bool:
        return generation == self.generation and self._bus.connected

    def _on_event(self, event: Event | None) -> None:
        self.generation += 1
        self._pages.data.clear()
        ids = named(event)
        if ids is None:
            self._series.data.clear()
            return
        for manga_id in ids:
            self._series.data.pop(manga_id, None)

    def clear(self) -> None:
        self._on_event(None)


# The columns of a MangaSummary but its genres (see summaries()).
SUMMARY_COLUMNS = tuple(
    c for c in Manga.__table__.c if c.key in MangaSummary.model_fields and c.key != "genres"
)


async def summaries(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[MangaSummary]:
    """Summaries of rows selected with SUMMARY_COLUMNS, in their order, with their
    genre names from one more statement (by name, as the details have them)."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    names: dict[int, list[str]] = {manga_id: [] for manga_id in ids}
    stmt = (
        select(MangaGenre.manga_id, Genre.name)
        .join(Genre, Genre.id == MangaGenre.genre_id)
        .where(MangaGenre.manga_id.in_(ids))
        .order_by(Genre.name)
    )
    for manga_id, name in (await conn.execute(stmt)).all():
        names[manga_id].append(name)
    fields = rows[0]._fields  # by position: cheaper than each row's mapping
    return [
        MangaSummary.model_validate({**dict(zip(fields, row, strict=True)), "genres": names[id_]})
        for id_, row in zip(ids, rows, strict=True)
    ]


def _details_select(dialect: str) -> Select[Any]:
    """Series rows plus each one's genre names as a JSON array."""
    names: Any
    if dialect == "postgresql":
        names = func.json_agg(aggregate_order_by(Genre.name, Genre.name))
    else:
        names = func.json_group_array(Genre.name)
    genre_names = (
        select(names)
        .select_from(MangaGenre)
        .join(Genre, Genre.id == MangaGenre.genre_id)
        .where(MangaGenre.manga_id == Manga.id)
        .scalar_subquery()
        .label("genre_names")
    )
    columns = [c for c in Manga.__table__.c if c.key in MangaDetails.model_fields]
    return select(*columns, genre_names)
