"""Small helpers shared by the reader-facing services (library, progress, social,
notifications, chat). Nothing here knows about a door; everything raises domain errors.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVarTuple, cast

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Row, Select, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.dml import Insert

from mangahub.bus import Event, EventBus
from mangahub.domain.errors import NotFound, ValidationFailed
from mangahub.domain.schemas import MAX_PAGE_SIZE, UserText
from mangahub.storage.models import Base, Manga, ReadingEntry, User

log = logging.getLogger(__name__)

_Ts = TypeVarTuple("_Ts")

# Integer primary keys are 32-bit on PostgreSQL; a larger id from a client cannot
# exist, and binding it would fail in the driver instead of answering "not found".
MAX_ROW_ID = 2**31 - 1

_user_text = TypeAdapter(UserText)


def valid_id(value: int) -> bool:
    """Whether ``value`` can be the id of a stored row (callers answer NotFound if not)."""
    return 1 <= value <= MAX_ROW_ID


async def require_manga(
    s: AsyncSession, manga_id: int, *, for_update: bool = False
) -> Row[int, int | None]:
    """``(id, total_chapters)`` of the manga, or NotFound.

    ``for_update`` locks the row (PostgreSQL; SQLite has one writer anyway) so that
    aggregates written back to it are computed from a stable set of rows.
    """
    if valid_id(manga_id):
        stmt = select(Manga.id, Manga.total_chapters).where(Manga.id == manga_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await s.execute(stmt)).one_or_none()
        if row is not None:
            return row
    raise manga_not_found(manga_id)


async def load_manga(s: AsyncSession, manga_id: int) -> Manga:
    """The whole manga row (with genres, for summaries), or NotFound."""
    manga = await s.get(Manga, manga_id) if valid_id(manga_id) else None
    if manga is None:
        raise manga_not_found(manga_id)
    return manga


def manga_not_found(manga_id: int) -> NotFound:
    return NotFound("manga not found", details={"manga_id": manga_id})


async def require_username(s: AsyncSession, user_id: uuid.UUID) -> str:
    """The user's current name; NotFound when the account was deleted after the token
    was issued (checking first also avoids a foreign-key error on insert)."""
    username = await s.scalar(select(User.username).where(User.id == user_id))
    if username is None:
        raise NotFound("user not found")
    return username


def check_page(page: int, page_size: int) -> None:
    """Every door paginates the same way; HTTP checks this too, other doors rely on it."""
    details = []
    if page < 1:
        details.append({"field": "page", "message": "must be at least 1"})
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        details.append({"field": "page_size", "message": f"must be 1..{MAX_PAGE_SIZE}"})
    if details:
        raise ValidationFailed("invalid pagination", details=details)


async def fetch_page(
    s: AsyncSession | AsyncConnection, stmt: Select[*_Ts], page: int, page_size: int
) -> tuple[Sequence[Row[*_Ts]], int]:
    """One page of ``stmt`` (which must be ordered) and the total number of rows."""
    check_page(page, page_size)
    offset = (page - 1) * page_size
    rows = (await s.execute(stmt.limit(page_size).offset(offset))).all()
    # A short page that is not past the end *is* the end: the total follows without
    # a second query (the common case of a small library or a first page).
    if len(rows) < page_size and (rows or page == 1):
        return rows, offset + len(rows)
    counted = select(func.count()).select_from(stmt.order_by(None).subquery())
    return rows, int(await s.scalar(counted) or 0)


def validate_text(value: str, field: str) -> str:
    """Free text from a user (comments, chat): 1–2000 chars, no control characters.

    The same rule as the HTTP schemas, applied here so the WebSocket and any other
    door get it too.
    """
    try:
        return _user_text.validate_python(value)
    except ValidationError as exc:
        details = [{"field": field, "message": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise ValidationFailed(f"invalid {field}", details=details) from exc


def upsert(
    dialect: str,
    model: type[Base],
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    update: Sequence[str],
) -> Insert:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET <update> = excluded.<update>``.

    The one place that knows upsert is dialect-specific. ``rows`` must not repeat a key:
    PostgreSQL refuses to update one row twice in a statement.
    """
    table = cast(Table, model.__table__)
    return upsert_rows(dialect, table, keys=keys, update=update).values(list(rows))


def upsert_rows(
    dialect: str, table: Table, *, keys: Sequence[str], update: Sequence[str]
) -> Insert:
    """:func:`upsert` without rows: execute it with a list of rows (an executemany, one
    statement compiled once whatever the number of rows; rows may repeat a key)."""
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys), set_={name: stmt.excluded[name] for name in update}
    )


_MANGA = cast(Table, Manga.__table__)
# Series per statement in recompute_averages.
_AVERAGE_CHUNK = 500


def recompute_averages(conn: Connection, manga_ids: Iterable[int]) -> dict[int, float | None]:
    """Average score and score count of each series, from its entries, in one
    statement per chunk (rows locked in id order first, like single score writes).
    Returns each series' new average."""
    ids = sorted(set(manga_ids))
    manga = _MANGA.c
    entries = ReadingEntry.__table__.c
    scores = select(func.avg(entries.score)).where(entries.manga_id == manga.id)
    counts = select(func.count(entries.score)).where(entries.manga_id == manga.id)
    averages: dict[int, float | None] = {}
    for start in range(0, len(ids), _AVERAGE_CHUNK):
        chunk = ids[start : start + _AVERAGE_CHUNK]
        conn.execute(
            select(manga.id).where(manga.id.in_(chunk)).order_by(manga.id).with_for_update()
        )
        rows = conn.execute(
            update(_MANGA)
            .where(manga.id.in_(chunk))
            .values(
                average_rating=func.round(scores.scalar_subquery(), 2),
                rating_count=counts.scalar_subquery(),
                # A new score is not an edit of the series: keep "recently updated" honest.
                updated_at=manga.updated_at,
            )
            .returning(manga.id, manga.average_rating)
        )
        averages.update(
            (manga_id, None if average is None else float(average))
            for manga_id, average in rows.all()
        )
    return averages


async def publish_after_commit(
    bus: EventBus, topic: str, event: Event, *, confirmed: bool = False
) -> None:
    """Publish an event about a write that is already committed; ``confirmed``: wait
    until every process has handled it (:meth:`EventBus.publish_confirmed`).

    The write is what matters (durability first): a bus failure is logged, not raised,
    because the caller's change did succeed and telling them otherwise would make them
    retry it. Peers catch up from storage (TCP ``sync``, chat history, undelivered
    notifications on SUBSCRIBE).
    """
    try:
        if confirmed:
            await bus.publish_confirmed(topic, event)
        else:
            await bus.publish(topic, event)
    except Exception:
        log.warning("event bus: could not publish to %s", topic, exc_info=True)


async def publish_all_after_commit(bus: EventBus, events: Sequence[tuple[str, Event]]) -> None:
    """:func:`publish_after_commit` of many events, in this order, in one go (one Redis
    pipeline)."""
    if not events:
        return
    try:
        await bus.publish_many(events)
    except Exception:
        log.warning("event bus: could not publish %d events", len(events), exc_info=True)
