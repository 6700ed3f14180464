"""A bounded pool of asyncio workers: N workers draining a bounded queue.

The producer waits when the queue is full (memory stays bounded however many items
there are); the first failing item cancels the rest and is raised from
:meth:`WorkerPool.join`; leaving the ``async with`` block early (an error, or a
cancelled job) cancels every worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, Self, TypeVar

T = TypeVar("T")


class WorkerPool(Generic[T]):
    """``async with WorkerPool(handle, workers=4) as pool: await pool.put(x)…;
    await pool.join()``."""

    def __init__(
        self, handle: Callable[[T], Awaitable[None]], *, workers: int, queue_size: int = 0
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._handle = handle
        self._workers = workers
        self._queue: asyncio.Queue[T] = asyncio.Queue(queue_size or workers * 2)
        self._tasks: list[asyncio.Task[None]] = []
        self._error: BaseException | None = None
        self._failed = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"sync-worker-{n}") for n in range(self._workers)
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._cancel()

    async def put(self, item: T) -> None:
        """Queue one item, waiting for room; raises the first worker failure."""
        if self._error is not None:
            raise self._error
        put = asyncio.ensure_future(self._queue.put(item))
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait((put, failed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
            if not put.done():
                put.cancel()
        if self._error is not None:
            raise self._error

    async def join(self) -> None:
        """Wait until every queued item is handled; raises the first failure."""
        joined = asyncio.ensure_future(self._queue.join())
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait((joined, failed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            joined.cancel()
            failed.cancel()
        if self._error is not None:
            raise self._error

    async def _work(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if self._error is None:
                    await self._handle(item)
            except Exception as exc:  # handed to the producer, which decides
                if self._error is None:
                    self._error = exc
                    self._failed.set()
            finally:
                self._queue.task_done()

    async def _cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
