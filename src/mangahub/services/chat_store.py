"""Group commit for chat messages: concurrent posts share one transaction.

Each :meth:`MessageStore.store` returns once the transaction holding its message has
committed (the caller publishes after that: broadcast after commit). While one
transaction is being written, new messages wait; the next transaction takes all of
them (up to ``max_batch``), in arrival order, so one connection's messages get
increasing ids in the order it sent them. No artificial delay: a lone message is its
own transaction (one ``INSERT … SELECT … RETURNING``); under load a room's burst
costs one commit (an fsync on SQLite) and a handful of driver calls, not one per
message.

The writer is a task started on demand and ending when nothing waits (like the Redis
bus's publish pipeline), so there is nothing to start or stop with the runtime.

A batch checks its authors and rooms with two reads and inserts every message whose
author and room exist in one multi-row ``INSERT … RETURNING``; the others fail with
NotFound. A batch that fails on an integrity error (a room deleted between the check
and the insert) is retried one message at a time, so one bad message cannot sink the
others.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Integer, Table, Text, exists, insert, literal, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert

from mangahub.domain.errors import MangaHubError, NotFound
from mangahub.services._common import manga_not_found, require_manga, require_username
from mangahub.storage.database import Database
from mangahub.storage.models import ChatMessage, Manga, User
from mangahub.storage.types import UTCDateTime

log = logging.getLogger(__name__)

# The table itself: Core inserts, no ORM bulk-persistence layer on the hot path.
MESSAGES = cast(Table, ChatMessage.__table__)
MAX_BATCH = 64
"""Messages per transaction at most (a multi-row INSERT stays small)."""


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A validated message to store."""

    user_id: uuid.UUID
    room_id: int
    content: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    username: str
    """The author's name when the message was stored."""


@dataclass(slots=True)
class _Waiting:
    message: NewMessage
    future: asyncio.Future[StoredMessage] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class MessageStore:
    """Stores chat messages, sharing transactions between concurrent posts."""

    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        # Counters for tests.
        self.transactions = 0

    async def store(self, message: NewMessage) -> StoredMessage:
        """The stored message once committed; NotFound for an unknown room or author."""
        return await self.submit(message)

    def submit(self, message: NewMessage) -> asyncio.Future[StoredMessage]:
        """Queue ``message`` now; the future resolves as :meth:`store` returns."""
        waiting = _Waiting(message)
        # A caller that went away never reads its future: mark the outcome as seen so
        # that asyncio does not log it as unretrieved.
        waiting.future.add_done_callback(_consume)
        self._waiting.append(waiting)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all(), name="chat-store")
        return waiting.future

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._write([w for w in batch if not w.future.done()])
        except BaseException as exc:  # cancelled at shutdown: nobody waits forever
            for waiting in [*self._waiting]:
                _fail(waiting, exc)
            self._waiting = []
            raise
        finally:
            self._writer = None

    async def _write(self, batch: list[_Waiting]) -> None:
        if not batch:  # every caller went away before its turn
            return
        try:
            if len(batch) == 1:
                await self._write_one(batch[0])
                return
            try:
                await self._write_many(batch)
            except (IntegrityError, DataError):
                log.warning("chat batch of %d failed; retrying one by one", len(batch))
                for waiting in batch:
                    await self._write_one(waiting)
        except BaseException as exc:
            for waiting in batch:
                _fail(waiting, exc)
            if not isinstance(exc, Exception):
                raise

    async def _write_one(self, waiting: _Waiting) -> None:
        m = waiting.message
        try:
            async with self._db.session() as s:
                stored = (await s.execute(_insert_one(m))).first()
                if stored is None:  # say which one is missing
                    await require_manga(s, m.room_id)
                    await require_username(s, m.user_id)
                    raise NotFound("user not found")  # both went away meanwhile
        except Exception as exc:
            _fail(waiting, exc)
            return
        self.transactions += 1
        _succeed(waiting, StoredMessage(stored[0], stored[1]))

    async def _write_many(self, batch: list[_Waiting]) -> None:
        stored: list[tuple[_Waiting, StoredMessage]] = []
        missing: list[tuple[_Waiting, MangaHubError]] = []
        async with self._db.session() as s:
            names, rooms = await _authors_and_rooms(s, batch)
            rows: list[_Waiting] = []
            for waiting in batch:
                m = waiting.message
                if m.room_id not in rooms:
                    missing.append((waiting, manga_not_found(m.room_id)))
                elif m.user_id not in names:
                    missing.append((waiting, NotFound("user not found")))
                else:
                    rows.append(waiting)
            if rows:
                ids = (
                    await s.execute(
                        insert(MESSAGES).returning(MESSAGES.c.id, sort_by_parameter_order=True),
                        [
                            {
                                "room_id": w.message.room_id,
                                "user_id": w.message.user_id,
                                "content": w.message.content,
                                "created_at": w.message.created_at,
                            }
                            for w in rows
                        ],
                    )
                ).scalars()
                for waiting, message_id in zip(rows, ids, strict=True):
                    stored.append(
                        (waiting, StoredMessage(message_id, names[waiting.message.user_id]))
                    )
        self.transactions += 1
        for waiting, result in stored:
            _succeed(waiting, result)
        for waiting, error in missing:
            _fail(waiting, error)


async def _authors_and_rooms(
    s: AsyncSession, batch: list[_Waiting]
) -> tuple[dict[uuid.UUID, str], set[int]]:
    user_ids = {w.message.user_id for w in batch}
    room_ids = {w.message.room_id for w in batch}
    users = await s.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
    rooms = await s.scalars(select(Manga.id).where(Manga.id.in_(room_ids)))
    return {row.id: row.username for row in users}, set(rooms)


def _insert_one(m: NewMessage) -> ReturningInsert[int, str]:
    """INSERT … SELECT … RETURNING (id, the author's name): no row when the room's
    manga or the author does not exist."""
    values = select(
        literal(m.room_id, Integer),
        User.id,
        literal(m.content, Text),
        literal(m.created_at, UTCDateTime),
    ).where(User.id == m.user_id, exists().where(Manga.id == m.room_id))
    author = select(User.username).where(User.id == m.user_id).scalar_subquery()
    return (
        insert(MESSAGES)
        .from_select(["room_id", "user_id", "content", "created_at"], values)
        .returning(MESSAGES.c.id, author)
    )


def _consume(future: asyncio.Future[StoredMessage]) -> None:
    if not future.cancelled():
        future.exception()


def _succeed(waiting: _Waiting, result: StoredMessage) -> None:
    if not waiting.future.done():
        waiting.future.set_result(result)


def _fail(waiting: _Waiting, exc: BaseException) -> None:
    if not waiting.future.done():
        if isinstance(exc, asyncio.CancelledError):
            waiting.future.cancel()
        else:
            waiting.future.set_exception(exc)
