"""Group commit for progress writes: many concurrent updates, one transaction.

:meth:`ProgressBatcher.offer` queues a write with its ``reply``, a plain function
called with the write's outcome (the stored entry, or a MangaHubError) only after the
transaction holding the write has committed (durability first: a client's ``ack`` is
written by that reply). Replies are called in submission order, straight from the
writer task: no future, callback or task per write. While one transaction is being
written, new writes queue up; the next transaction takes all of them (up to
``max_batch``). There is no artificial delay: under light load every write is its own
transaction, under heavy load the cost of a commit (an fsync on SQLite, a round trip
and WAL flush on PostgreSQL) is shared by the whole batch.

One writer task per process keeps arrival order: two writes of one user are
committed in the order they were offered, so the later one wins and gets the higher
version. The queue is bounded (``max_queue``): ``offer`` refuses a write when it is
full and the caller waits for :meth:`room`.

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
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.exc import DataError, IntegrityError

from mangahub.domain.errors import InternalError, MangaHubError, Unavailable

log = logging.getLogger(__name__)


W = TypeVar("W")  # one write, as the store takes it
R = TypeVar("R")  # what the store answers for one stored write
Reply = Callable[[R | MangaHubError], None]
"""Called once with a write's outcome, after its transaction; it should not raise."""

_SHUTTING_DOWN = "server shutting down"


class ProgressBatcher(Generic[W, R]):
    """Collects concurrent progress writes into shared transactions."""

    def __init__(
        self,
        write_one: Callable[[W], Awaitable[R]],
        write_many: Callable[[Sequence[W]], Awaitable[Sequence[R | MangaHubError]]] | None = None,
        *,
        max_batch: int = 1024,
        max_queue: int = 8192,
    ) -> None:
        self._write_one = write_one
        self._write_many = write_many
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._queue: list[tuple[W, Reply[R]]] = []
        self._busy = False  # a batch is being committed
        self._wakeup: asyncio.Future[None] | None = None  # the idle writer sleeps on it
        self._room: list[asyncio.Future[None]] = []  # callers waiting for a full queue
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Counters for tests and metrics.
        self.transactions = 0
        self.writes = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="progress-batcher")

    def offer(self, write: W, reply: Reply[R]) -> bool:
        """Queue ``write``; ``reply`` gets its outcome once committed. False (nothing
        queued) when the queue is full: wait for :meth:`room` and offer again. Raises
        Unavailable once the batcher is stopping."""
        if self._closing or self._task is None:
            raise Unavailable(_SHUTTING_DOWN)
        if len(self._queue) >= self.max_queue:
            return False
        self._queue.append((write, reply))
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
        return True

    async def room(self) -> None:
        """Until the queue has room for one more write."""
        while len(self._queue) >= self.max_queue and not self._closing:
            waiter = asyncio.get_running_loop().create_future()
            self._room.append(waiter)
            await waiter

    @property
    def closing(self) -> bool:
        """True once :meth:`stop` began: offers raise Unavailable."""
        return self._closing

    @property
    def queued(self) -> int:
        """Writes offered and not yet taken into a transaction."""
        return len(self._queue)

    async def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued (within ``timeout``), then stop; later offers fail."""
        self._closing = True
        self._release_room()
        if self._task is None:
            return
        try:
            async with asyncio.timeout(timeout):
                while self._queue or self._busy:
                    await asyncio.sleep(0.01)
        except TimeoutError:
            log.warning("progress batcher: %d writes not committed at shutdown", len(self._queue))
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        left, self._queue = self._queue, []
        _fail_all(left, Unavailable(_SHUTTING_DOWN))

    def _release_room(self, count: int | None = None) -> None:
        """Wake ``count`` waiters (all by default), first come first served: each
        offers its write, so waking more than there is room for would only make
        the rest queue up again."""
        if count is None or count >= len(self._room):
            waiters, self._room = self._room, []
        else:
            waiters, self._room = self._room[:count], self._room[count:]
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup = loop.create_future()
                await self._wakeup
                self._wakeup = None
                continue
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            if self._room:
                self._release_room(self.max_queue - len(self._queue))
            self._busy = True
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                _fail_all(batch, Unavailable(_SHUTTING_DOWN))
                raise
            finally:
                self._busy = False

    async def _commit(self, batch: list[tuple[W, Reply[R]]]) -> None:
        if self._write_many is not None:
            try:
                results = await self._write_many([write for write, _ in batch])
            except (IntegrityError, DataError):
                log.warning("progress batch of %d failed; retrying one by one", len(batch))
            except Exception as exc:
                error = exc if isinstance(exc, MangaHubError) else _unexpected(exc)
                if not isinstance(exc, MangaHubError):
                    log.exception("progress batch of %d failed", len(batch))
                _fail_all(batch, error)
                return
            else:
                self.transactions += 1
                self.writes += len(batch)
                for (_, reply), result in zip(batch, results, strict=True):
                    _answer(reply, result)
                return
        for write, reply in batch:
            outcome: R | MangaHubError
            try:
                outcome = await self._write_one(write)
            except MangaHubError as exc:
                outcome = exc
            except Exception as exc:
                log.exception("progress write failed")
                outcome = _unexpected(exc)
            else:
                self.transactions += 1
                self.writes += 1
            _answer(reply, outcome)


def _unexpected(exc: Exception) -> MangaHubError:
    # Transport trouble is worth a retry (the database handle already maps its own
    # connection failures to Unavailable).
    if isinstance(exc, OSError | TimeoutError):
        return Unavailable("progress store unavailable; retry later")
    return InternalError("could not store progress")


def _answer(reply: Reply[R], outcome: R | MangaHubError) -> None:
    try:
        reply(outcome)
    except Exception:  # one broken reply must not keep the others from theirs
        log.exception("progress reply failed")


def _fail_all(
    batch: Sequence[tuple[W, Reply[R]]],
    error: MangaHubError,
) -> None:
    for _, reply in batch:
        _answer(reply, error)
