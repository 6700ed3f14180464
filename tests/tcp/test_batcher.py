"""How the progress batcher handles a failed shared transaction (unit tests of
ProgressBatcher._commit's error paths: the writers are plain functions that count)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from mangahub.domain.enums import ReadingStatus
from mangahub.domain.errors import MangaHubError, Unavailable
from mangahub.domain.schemas import EntryPublic
from mangahub.tcp.batcher import ProgressBatcher, ProgressWrite

USER = uuid.uuid4()


def write(manga_id: int) -> ProgressWrite:
    return ProgressWrite(USER, manga_id, 1.0, ReadingStatus.READING, "test", None)


def stored(w: ProgressWrite) -> EntryPublic:
    # Only identity matters here: the batcher hands the stored entry back untouched.
    return EntryPublic.model_construct(
        manga_id=w.manga_id,
        chapter=w.chapter,
        status=w.status,
        version=1,
        updated_at=datetime.now(UTC),
        device=w.device,
    )


class Store:
    """Counts calls; ``many_error`` is what a shared transaction raises."""

    def __init__(self, many_error: Exception, bad: int | None = None) -> None:
        self.many_error = many_error
        self.bad = bad
        self.one_calls = 0
        self.many_calls = 0

    async def write_one(self, w: ProgressWrite) -> EntryPublic:
        self.one_calls += 1
        if w.manga_id == self.bad:
            raise IntegrityError("INSERT", {}, Exception("foreign key"))
        return stored(w)

    async def write_many(
        self, writes: Sequence[ProgressWrite]
    ) -> Sequence[EntryPublic | MangaHubError]:
        self.many_calls += 1
        raise self.many_error


async def submit_all(store: Store, count: int) -> list[asyncio.Future[EntryPublic]]:
    batcher = ProgressBatcher(store.write_one, store.write_many, max_batch=count)
    await batcher.start()
    # Submitting never yields while the queue has room: the writer task, once it
    # runs, finds every write queued and makes them one batch.
    futures = [await batcher.submit(write(i)) for i in range(count)]
    await asyncio.wait(futures, timeout=5)
    await batcher.stop()
    return futures


async def test_an_unavailable_database_fails_the_whole_batch_at_once() -> None:
    store = Store(Unavailable("database unavailable; retry later"))
    futures = await submit_all(store, 50)
    assert store.many_calls == 1
    assert store.one_calls == 0  # no write waits for the connect timeout on its own
    for future in futures:
        with pytest.raises(Unavailable):
            future.result()


async def test_a_transport_error_fails_the_batch_as_unavailable() -> None:
    store = Store(ConnectionResetError("reset"))
    futures = await submit_all(store, 10)
    assert store.one_calls == 0
    for future in futures:
        with pytest.raises(Unavailable):
            future.result()


async def test_an_integrity_error_retries_one_by_one_and_isolates_the_bad_write() -> None:
    store = Store(IntegrityError("INSERT", {}, Exception("foreign key")), bad=3)
    futures = await submit_all(store, 10)
    assert store.many_calls == 1 and store.one_calls == 10
    assert [f.exception() is None for f in futures] == [i != 3 for i in range(10)]
