"""Pure pieces of sync: the worker pool, the schedule arithmetic, the list walk past
MangaDex's 10,000-result window (with an in-test source)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaStatus
from mangahub.sources.models import SourceChapter, SourceManga, SourcePage
from mangahub.sync.jobs import PAGE_SIZE, RESULT_WINDOW, _Walk, _walk_pages
from mangahub.sync.pool import WorkerPool
from mangahub.sync.scheduler import backoff, due_at
from mangahub.sync.state import JobState, JobStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)


# --- the worker pool ----------------------------------------------------------------------


async def test_the_pool_runs_items_concurrently_up_to_its_worker_count() -> None:
    active = peak = 0
    done: list[int] = []

    async def handle(item: int) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        done.append(item)

    async with WorkerPool(handle, workers=3, queue_size=2) as pool:
        for item in range(20):
            await pool.put(item)
        await pool.join()
    assert sorted(done) == list(range(20))
    assert peak == 3


async def test_the_queue_is_bounded_so_the_producer_waits() -> None:
    release = asyncio.Event()

    async def handle(item: int) -> None:
        await release.wait()

    async with WorkerPool(handle, workers=1, queue_size=2) as pool:
        await pool.put(1)  # taken by the worker
        await asyncio.sleep(0)
        await pool.put(2)
        await pool.put(3)  # the queue is full now
        blocked = asyncio.create_task(pool.put(4))
        await asyncio.sleep(0.05)
        assert not blocked.done()
        release.set()
        await blocked
        await pool.join()


async def test_the_first_failure_stops_the_pool_and_reaches_the_producer() -> None:
    handled: list[int] = []

    async def handle(item: int) -> None:
        if item == 3:
            raise ValueError("bad item")
        handled.append(item)
        await asyncio.sleep(0.01)

    with pytest.raises(ValueError, match="bad item"):
        async with WorkerPool(handle, workers=2) as pool:
            for item in range(50):
                await pool.put(item)
            await pool.join()
    assert len(handled) < 50


async def test_leaving_the_pool_cancels_its_workers() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def handle(item: int) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with WorkerPool(handle, workers=1) as pool:
        await pool.put(1)
        await started.wait()
    assert cancelled.is_set()


# --- schedule arithmetic ------------------------------------------------------------------


def test_backoff_doubles_from_the_base_up_to_the_interval() -> None:
    day = timedelta(hours=24)
    assert [backoff(n, day).total_seconds() for n in (1, 2, 3)] == [60, 120, 240]
    assert backoff(40, day) == day
    assert backoff(3, timedelta(minutes=2)) == timedelta(minutes=2)


def test_due_times_come_from_the_stored_state() -> None:
    hour = timedelta(hours=1)
    assert due_at(JobState("j"), hour, NOW) == NOW  # never run
    done = JobState("j", JobStatus.DONE, last_success_at=NOW - timedelta(minutes=10))
    assert due_at(done, hour, NOW) == NOW + timedelta(minutes=50)
    assert due_at(done, None, NOW) is None  # a one-off job that completed
    failed = JobState("j", JobStatus.FAILED, last_run_at=NOW, metadata={"failures": 2})
    assert due_at(failed, hour, NOW) == NOW + timedelta(minutes=2)
    held = JobState("j", JobStatus.RUNNING, lease_expires_at=NOW + timedelta(seconds=30))
    assert due_at(held, hour, NOW) == NOW + timedelta(seconds=30)


# --- walking past the result window -----------------------------------------------------


class ListSource:
    """An in-test MangaDex list: ``count`` series, one second apart, with MangaDex's
    paging rules (``createdAtSince`` inclusive, the 10,000-result window)."""

    def __init__(self, count: int) -> None:
        self.created = [NOW + timedelta(seconds=n) for n in range(count)]
        self.calls: list[tuple[int, datetime | None]] = []

    async def list_manga(
        self, *, offset: int = 0, limit: int = 100, created_since: datetime | None = None
    ) -> SourcePage[SourceManga]:
        self.calls.append((offset, created_since))
        assert offset + limit <= RESULT_WINDOW, "the source would refuse this page"
        items = [c for c in self.created if created_since is None or c >= created_since]
        page = tuple(_manga(c) for c in items[offset : offset + limit])
        return SourcePage(items=page, offset=offset, limit=limit, total=len(items))

    async def chapter_feed(
        self,
        mangadex_id: str,
        *,
        offset: int = 0,
        limit: int = 100,
        languages: Sequence[str] = ("en",),
    ) -> SourcePage[SourceChapter]:
        raise AssertionError("not used")


def _manga(created: datetime) -> SourceManga:
    source_id = f"{int(created.timestamp()):036d}"
    record = SeriesRecord(title=source_id, status=MangaStatus.ONGOING, mangadex_id=source_id)
    return SourceManga("mangadex", source_id, record, created_at=created)


@pytest.mark.parametrize("workers", [1, 4])
async def test_the_walk_restarts_from_the_newest_created_at_at_the_window_edge(
    workers: int,
) -> None:
    source = ListSource(RESULT_WINDOW + 250)
    seen: set[str] = set()
    cursors: list[_Walk] = []

    async def on_page(page: SourcePage[SourceManga], after: _Walk) -> None:
        seen.update(m.source_id for m in page.items)
        cursors.append(after)

    await _walk_pages(source, _Walk(), on_page, workers=workers)
    assert len(seen) == RESULT_WINDOW + 250, "every series, none lost at the edge"
    window = [c.offset for c in cursors if c.since is None]
    assert window == sorted(window), "the committed position never moves back"
    edge = next(c for c in cursors if c.since is not None)
    assert edge.offset == 0
    assert edge.since == source.created[RESULT_WINDOW - 1].isoformat()
    assert max(offset for offset, _ in source.calls) + PAGE_SIZE <= RESULT_WINDOW


async def test_a_walk_resumed_from_its_last_position_near_the_window_edge_ends() -> None:
    # A crash after the last page's checkpoint (before the run is recorded done) leaves
    # the position after that page; resuming from it must not ask past the window.
    source = ListSource(RESULT_WINDOW - 50)
    cursors: list[_Walk] = []

    async def on_page(page: SourcePage[SourceManga], after: _Walk) -> None:
        cursors.append(after)

    await _walk_pages(source, _Walk(), on_page)
    await _walk_pages(source, cursors[-1], on_page)
    assert max(offset for offset, _ in source.calls) + PAGE_SIZE <= RESULT_WINDOW
