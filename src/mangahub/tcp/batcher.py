"""Group commit for progress writes: many concurrent updates, one transaction.

Each :meth:`ProgressBatcher.submit` returns a future resolved only after the
transaction holding the write has committed (durability first: a client's ``ack``
waits for this future). While one transaction is being written, new submissions
queue up; the next transaction takes all of them (up to ``max_batch``). There is
no artificial delay: under light load every write is its own transaction, under
heavy load the cost of a commit (an fsync on SQLite, a round trip and WAL flush on
PostgreSQL) is shared by the whole batch.

One writer task per process keeps arrival order: two writes of one user are
committed in the order they were submitted, so the later one wins and gets the
higher version.

A batch that one row made fail (an integrity or data error: say a row references a
manga that was just deleted) is retried one write at a time, so one bad write cannot
sink the others. A batch that failed because the database is unavailable fails as a
whole at once: retrying each write alone would only make every one of them wait for
the connect timeout again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from sqlalchemy.exc import DataError, IntegrityError

from mangahub.domain.enums import ReadingStatus
from mangahub.domain.errors import InternalError, MangaHubError, Unavailable

log = logging.getLogger(__name__)


class ProgressWrite(NamedTuple):
    """One progress write as the service's ``update_many`` takes it."""

    user_id: uuid.UUID
    manga_id: int
    chapter: float
    status: ReadingStatus | None
    device: str | None
    origin: str | None
    volume: int | None = None


R = TypeVar("R")  # what the store answers for one stored write


@dataclass(slots=True)
class _Pending(Generic[R]):
    write: ProgressWrite
    future: asyncio.Future[R] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ProgressBatcher(Generic[R]):
    """Collects concurrent progress writes into shared transactions."""

    def __init__(
        self,
        write_one: Callable[[ProgressWrite], Awaitable[R]],
        write_many: Callable[[Sequence[ProgressWrite]], Awaitable[Sequence[R | MangaHubError]]]
        | None = None,
        *,
        max_batch: int = 1024,
        max_queue: int = 8192,
    ) -> None:
        self._write_one = write_one
        self._write_many = write_many
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_Pending[R]] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Counters for tests and metrics.
        self.transactions = 0
        self.writes = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="progress-batcher")

    async def submit(self, write: ProgressWrite) -> asyncio.Future[R]:
        """Queue ``write`` (waiting for room when the queue is full); the returned future
        resolves to the stored progress once committed, or raises a MangaHubError."""
        if self._closing or self._task is None:
            raise Unavailable("server shutting down")
        pending: _Pending[R] = _Pending(write)
        # A caller that went away (connection dropped) never reads its future; mark the
        # outcome as seen so asyncio does not log it as unretrieved.
        pending.future.add_done_callback(_consume)
        if self._queue.full():
            await self._queue.put(pending)  # waits for room
        else:
            self._queue.put_nowait(pending)  # what put() does then, without a coroutine
        return pending.future

    async def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued (within ``timeout``), then stop; later submits fail."""
        self._closing = True
        if self._task is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._queue.join()
        except TimeoutError:
            log.warning(
                "progress batcher: %d writes not committed at shutdown", self._queue.qsize()
            )
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        while not self._queue.empty():
            _fail(self._queue.get_nowait(), Unavailable("server shutting down"))
            self._queue.task_done()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit([p for p in batch if not p.future.done()])
            except asyncio.CancelledError:
                for pending in batch:
                    _fail(pending, Unavailable("server shutting down"))
                raise
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Pending[R]]) -> None:
        if not batch:
            return
        if self._write_many is not None:
            try:
                results = await self._write_many([p.write for p in batch])
            except (IntegrityError, DataError):
                log.warning("progress batch of %d failed; retrying one by one", len(batch))
            except Exception as exc:
                error = exc if isinstance(exc, MangaHubError) else _unexpected(exc)
                if not isinstance(exc, MangaHubError):
                    log.exception("progress batch of %d failed", len(batch))
                for pending in batch:
                    _fail(pending, error)
                return
            else:
                self.transactions += 1
                self.writes += len(batch)
                for pending, result in zip(batch, results, strict=True):
                    if isinstance(result, MangaHubError):
                        _fail(pending, result)
                    else:
                        _succeed(pending, result)
                return
        for pending in batch:
            try:
                result = await self._write_one(pending.write)
            except MangaHubError as exc:
                _fail(pending, exc)
            except Exception as exc:
                log.exception("progress write failed")
                _fail(pending, _unexpected(exc))
            else:
                self.transactions += 1
                self.writes += 1
                _succeed(pending, result)


def _unexpected(exc: Exception) -> MangaHubError:
    # Transport trouble is worth a retry (the database handle already maps its own
    # connection failures to Unavailable).
    if isinstance(exc, OSError | TimeoutError):
        return Unavailable("progress store unavailable; retry later")
    return InternalError("could not store progress")


def _consume(future: asyncio.Future[R]) -> None:
    if not future.cancelled():
        future.exception()


def _succeed(pending: _Pending[R], result: R) -> None:
    if not pending.future.done():
        pending.future.set_result(result)


def _fail(pending: _Pending[R], exc: MangaHubError) -> None:
    if not pending.future.done():
        pending.future.set_exception(exc)
