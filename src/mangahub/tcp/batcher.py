"""Group commit for progress writes: many concurrent updates, one transaction.

:meth:`ProgressBatcher.offer` queues a write with its ``reply``, a plain function
called with the offer's ``tag`` and the write's outcome (the stored entry, or a
MangaHubError) only after the transaction holding the write has committed (durability
first: a client's ``ack`` is written by that reply). Replies are called in submission
order, straight from the writer task: no future, callback or task per write. While one
transaction is being written, new writes queue up; the next transaction takes all of
them (up to ``max_batch``). There is no artificial delay: under light load every write
is its own transaction, under heavy load the cost of a commit (an fsync on SQLite, a
round trip and WAL flush on PostgreSQL) is shared by the whole batch.

A batch is answered in two steps: its transaction (``commit_many``), then its
:class:`Committed` outcomes, made and replied a slice of ``announce_slice`` writes at a
time by a task of their own. The writer task starts the next transaction as soon as
one commits, so under load the main thread builds and sends one batch's replies while
the database works on the next batch, instead of each waiting for the other.

One writer task per process keeps arrival order: two writes of one user are
committed in the order they were offered, so the later one wins and gets the higher
version. The queue is bounded (``max_queue``): ``offer`` refuses a write when it is
full and the caller waits for room: with :meth:`when_room` (a plain callback, so a
connection can go on offering from its transport callbacks) or :meth:`room`.

A batch that one row made fail (an integrity or data error: say a row references a
manga that was just deleted) is retried one write at a time, so one bad write cannot
sink the others. A batch that failed because the database is unavailable fails as a
whole at once: retrying each write alone would only make every one of them wait for
the connect timeout again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.exc import DataError, IntegrityError

from mangahub.domain.errors import InternalError, MangaHubError, Unavailable

log = logging.getLogger(__name__)


W = TypeVar("W")  # one write, as the store takes it
R = TypeVar("R")  # what the store answers for one stored write
R_co = TypeVar("R_co", covariant=True)
Reply = Callable[[Any, R | MangaHubError], None]
"""Called once with an offer's tag and its write's outcome, after its transaction; it
should not raise. (A tag rather than a partial per write: one is offered per update.)"""


_Offer = tuple[W, Reply[R], Any]  # a write, its reply and the reply's tag


class Committed(Protocol[R_co]):
    """A committed batch, its outcomes not made yet."""

    def announce(self, start: int, stop: int) -> Awaitable[Sequence[R_co | MangaHubError]]:
        """The outcomes of writes ``start:stop`` (called with consecutive slices)."""
        ...


_SHUTTING_DOWN = "server shutting down"


class ProgressBatcher(Generic[W, R]):
    """Collects concurrent progress writes into shared transactions."""

    def __init__(
        self,
        write_one: Callable[[W], Awaitable[R]],
        commit_many: Callable[[Sequence[W]], Awaitable[Committed[R]]] | None = None,
        *,
        max_batch: int = 1024,
        max_queue: int = 8192,
        announce_slice: int = 128,
    ) -> None:
        self._write_one = write_one
        self._commit_many = commit_many
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.announce_slice = announce_slice
        # The task answering the last committed batch; the next one waits for it.
        self._announcing: asyncio.Task[None] | None = None
        self._queue: list[_Offer[W, R]] = []
        self._busy = False  # a batch is being committed
        self._wakeup: asyncio.Future[None] | None = None  # the idle writer sleeps on it
        self._room: deque[Callable[[], None]] = deque()  # callers waiting for a full queue
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Counters for tests and metrics.
        self.transactions = 0
        self.writes = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="progress-batcher")

    def offer(self, write: W, reply: Reply[R], tag: Any = None) -> bool:
        """Queue ``write``; ``reply(tag, outcome)`` is called once it is committed. False (nothing
        queued) when the queue is full: wait for :meth:`room` and offer again. Raises
        Unavailable once the batcher is stopping."""
        if self._closing or self._task is None:
            raise Unavailable(_SHUTTING_DOWN)
        if len(self._queue) >= self.max_queue:
            return False
        self._queue.append((write, reply, tag))
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
        return True

    def when_room(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the queue has room again (or the batcher
        stops). Waiters are called first come, first served, while there is room."""
        self._room.append(callback)

    async def room(self) -> None:
        """Until the queue has room for one more write."""
        while len(self._queue) >= self.max_queue and not self._closing:
            waiter = asyncio.get_running_loop().create_future()
            self.when_room(functools.partial(_resolve, waiter))
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
                await self._announced()
        except TimeoutError:
            log.warning("progress batcher: %d writes not committed at shutdown", len(self._queue))
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._announcing is not None:  # only left running by the timeout
            self._announcing.cancel()
            await asyncio.wait([self._announcing])
        left, self._queue = self._queue, []
        _fail_all(left, Unavailable(_SHUTTING_DOWN))

    def _release_room(self) -> None:
        """Call waiters while the queue has room: each offers what it holds (a
        future's task only later, so it counts for one write), and one that finds the
        queue full again waits anew. Every waiter once the batcher is closing."""
        if self._closing:
            waiters, self._room = self._room, deque()
            for callback in waiters:
                _call(callback)
            return
        free = self.max_queue - len(self._queue)
        while self._room and free > 0:
            _call(self._room.popleft())
            free = min(free - 1, self.max_queue - len(self._queue))

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
                self._release_room()
            self._busy = True
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                _fail_all(batch, Unavailable(_SHUTTING_DOWN))
                raise
            finally:
                self._busy = False

    async def _commit(self, batch: list[_Offer[W, R]]) -> None:
        if self._commit_many is not None:
            try:
                committed = await self._commit_many([offer[0] for offer in batch])
            except (IntegrityError, DataError):
                log.warning("progress batch of %d failed; retrying one by one", len(batch))
            except Exception as exc:
                error = _failure(exc, "progress batch of %d failed", len(batch))
                await self._announced()  # replies leave in submission order
                _fail_all(batch, error)
                return
            else:
                self.transactions += 1
                self.writes += len(batch)
                self._announcing = asyncio.create_task(
                    self._announce(batch, committed, self._announcing),
                    name="progress-batcher-replies",
                )
                return
        await self._announced()
        for write, reply, tag in batch:
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
            _answer(reply, tag, outcome)

    async def _announced(self) -> None:
        """Until every committed batch is answered."""
        if self._announcing is not None:
            await asyncio.wait([self._announcing])

    async def _announce(
        self,
        batch: list[_Offer[W, R]],
        committed: Committed[R],
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Reply to a committed batch, a slice at a time (the loop runs the next
        transaction's steps in between), after the batch before it."""
        if previous is not None:
            await asyncio.wait([previous])
        step = self.announce_slice
        for start in range(0, len(batch), step):
            stop = min(start + step, len(batch))
            try:
                outcomes = await committed.announce(start, stop)
            except Exception as exc:
                # Stored, but its outcome could not be made (say the database went away
                # before the series were read back): the client retries.
                error = _failure(exc, "progress replies for %d writes failed", stop - start)
                outcomes = [error] * (stop - start)
            for (_, reply, tag), outcome in zip(batch[start:stop], outcomes, strict=True):
                _answer(reply, tag, outcome)
            if stop < len(batch):
                await asyncio.sleep(0)


def _call(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # one broken waiter must not keep the others waiting
        log.exception("progress batcher: a room callback failed")


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _failure(exc: Exception, message: str, count: int) -> MangaHubError:
    """What the replies of ``count`` writes carry when ``exc`` stopped them: a
    MangaHubError as it is, anything else logged (``message``) and mapped."""
    if isinstance(exc, MangaHubError):
        return exc
    log.exception(message, count)
    return _unexpected(exc)


def _unexpected(exc: Exception) -> MangaHubError:
    # Transport trouble is worth a retry (the database handle already maps its own
    # connection failures to Unavailable).
    if isinstance(exc, OSError | TimeoutError):
        return Unavailable("progress store unavailable; retry later")
    return InternalError("could not store progress")


def _answer(reply: Reply[R], tag: Any, outcome: R | MangaHubError) -> None:
    try:
        reply(tag, outcome)
    except Exception:  # one broken reply must not keep the others from theirs
        log.exception("progress reply failed")


def _fail_all(
    batch: Sequence[_Offer[W, R]],
    error: MangaHubError,
) -> None:
    for _, reply, tag in batch:
        _answer(reply, tag, error)
