"""Group commit for chat messages: concurrent posts share one transaction.

Each :meth:`MessageStore.store` returns once the transaction holding its message has
committed (the caller publishes after that: broadcast after commit). While one
transaction is being written, new messages wait; the next transaction takes all of
them (up to ``max_batch``), in arrival order, so one connection's messages get
increasing ids in the order it sent them. No artificial delay: a lone message is its
own transaction (one ``INSERT … SELECT … RETURNING``); under load a room's burst
costs one commit and a handful of statements, not one per message.

Durability: each transaction is a plain function run whole by
``Database.write_relaxed``. On SQLite that is a connection of the chat store's own,
one hand-off to its thread per transaction (``BEGIN IMMEDIATE`` … ``COMMIT``), with
``synchronous=NORMAL``: a committed message survives a crash or SIGKILL of the
server, but a power loss or an OS crash may lose the last moments of chat (no fsync
per commit; every other write keeps ``FULL``). On PostgreSQL it is an ordinary
session, as durable as every other write. See docs/reliability.md, "Chat on SQLite".

The writer is a task started on demand and ending when nothing waits (like the Redis
bus's publish pipeline), so there is nothing to start or stop with the runtime.

A batch checks its authors and rooms with two reads and inserts every message whose
author and room exist in one multi-row ``INSERT … RETURNING``, in the same
transaction; the others fail with NotFound. A batch that fails on an integrity error
(on PostgreSQL, a room deleted between the check and the insert) is retried one
message at a time, so one bad message cannot sink the others.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Integer, Table, Text, bindparam, exists, insert, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.sql.dml import Insert

from mangahub.domain.errors import NotFound
from mangahub.services._common import manga_not_found
from mangahub.storage.database import Database
from mangahub.storage.models import ChatMessage, Manga, User
from mangahub.storage.sqlite_writer import HotStatement
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
        try:
            stored = await self._db.write_relaxed(_insert_one, waiting.message)
        except Exception as exc:
            _fail(waiting, exc)
            return
        self.transactions += 1
        _succeed(waiting, stored)

    async def _write_many(self, batch: list[_Waiting]) -> None:
        results = await self._db.write_relaxed(_insert_many, [w.message for w in batch])
        self.transactions += 1
        for waiting, result in zip(batch, results, strict=True):
            if isinstance(result, StoredMessage):
                _succeed(waiting, result)
            else:
                _fail(waiting, result)


# The transactions themselves: plain functions over a synchronous connection, each run
# whole by Database.write_relaxed (on SQLite in one hand-off to the writer's thread).


def _insert_one(conn: Connection, m: NewMessage) -> StoredMessage:
    """One message: the stored message, or NotFound (nothing is written)."""
    params = {
        "room_id": m.room_id,
        "user_id": m.user_id,
        "content": m.content,
        "created_at": m.created_at,
    }
    rows = _INSERT_ONE.rows(conn, params)
    if rows is None:  # not SQLite's writer: through SQLAlchemy
        rows = list(conn.execute(_INSERT_ONE.statement, params))
    if not rows:  # say which one is missing
        if conn.scalar(select(Manga.id).where(Manga.id == m.room_id)) is None:
            raise manga_not_found(m.room_id)
        raise NotFound("user not found")
    return StoredMessage(rows[0][0], rows[0][1])


def _insert_many(conn: Connection, batch: list[NewMessage]) -> list[StoredMessage | NotFound]:
    """Several messages in one multi-row INSERT: per message, in order, the stored
    message or NotFound for an unknown author or room (not written)."""
    user_ids = {m.user_id for m in batch}
    room_ids = {m.room_id for m in batch}
    names: dict[uuid.UUID, str] = {
        row.id: row.username
        for row in conn.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
    }
    rooms = set(conn.scalars(select(Manga.id).where(Manga.id.in_(room_ids))))
    results: list[StoredMessage | NotFound] = []
    rows: list[tuple[int, NewMessage]] = []
    for m in batch:
        if m.room_id not in rooms:
            results.append(manga_not_found(m.room_id))
        elif m.user_id not in names:
            results.append(NotFound("user not found"))
        else:
            rows.append((len(results), m))
            results.append(NotFound("user not found"))  # replaced below
    if rows:
        ids = conn.execute(
            insert(MESSAGES).returning(MESSAGES.c.id, sort_by_parameter_order=True),
            [
                {
                    "room_id": m.room_id,
                    "user_id": m.user_id,
                    "content": m.content,
                    "created_at": m.created_at,
                }
                for _, m in rows
            ],
        ).scalars()
        for (at, m), message_id in zip(rows, ids, strict=True):
            results[at] = StoredMessage(message_id, names[m.user_id])
    return results


def _one_message_insert() -> Insert:
    """INSERT … SELECT … RETURNING (id, the author's name): no row when the room's
    manga or the author does not exist. Built once; the message comes as parameters."""
    room_id = bindparam("room_id", type_=Integer)
    user_id = bindparam("user_id", type_=User.id.type)
    values = select(
        room_id,
        User.id,
        bindparam("content", type_=Text),
        bindparam("created_at", type_=UTCDateTime),
    ).where(User.id == user_id, exists().where(Manga.id == room_id))
    author = select(User.username).where(User.id == user_id).scalar_subquery()
    return (
        insert(MESSAGES)
        .from_select(["room_id", "user_id", "content", "created_at"], values)
        .returning(MESSAGES.c.id, author)
    )


# Compiled once; on SQLite's writer run on the driver connection (the hot path).
_INSERT_ONE = HotStatement(_one_message_insert())


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
