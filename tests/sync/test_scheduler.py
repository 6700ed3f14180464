"""The ``sync`` part: jobs run when due (from sync_state), and not before."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta

from mangahub.app import Runtime
from mangahub.servers import PARTS, build_servers
from mangahub.sources.registry import SourceClients
from mangahub.sync.scheduler import SyncScheduler
from mangahub.sync.state import SyncStore
from tests.fakes.sources import FakeSources
from tests.sync.conftest import SyncEnv


def with_intervals(runtime: Runtime, poll_seconds: float, chapter_seconds: float) -> Runtime:
    settings = runtime.settings.model_copy(
        update={
            "sync_poll_interval_hours": poll_seconds / 3600,
            "sync_chapter_interval_hours": chapter_seconds / 3600,
        }
    )
    return dataclasses.replace(runtime, settings=settings)


async def test_jobs_run_when_due_and_never_before(
    env: SyncEnv, fake: FakeSources, clients: SourceClients
) -> None:
    runtime = with_intervals(env.runtime, poll_seconds=1.0, chapter_seconds=1.5)
    only_mangadex = SourceClients(mangadex=clients.mangadex, anilist=None)
    scheduler = SyncScheduler(runtime, clients=only_mangadex, tick=0.05)
    assert set(scheduler.schedule()) == {"mangadex_import", "mangadex_poll", "mangadex_chapters"}
    await scheduler.start()
    try:
        async with asyncio.timeout(60):
            while not all(
                sum(job == name for job, _, _ in scheduler.runs) >= 2
                for name in ("mangadex_poll", "mangadex_chapters")
            ):
                await asyncio.sleep(0.05)
    finally:
        await scheduler.stop(5)
    runs = scheduler.runs
    assert all(outcome == "done" for _, outcome, _ in runs), runs
    jobs = [job for job, _, _ in runs]
    assert jobs[0] == "mangadex_import" and jobs.count("mangadex_import") == 1
    for job, interval in (("mangadex_poll", 1.0), ("mangadex_chapters", 1.5)):
        starts = [at for name, _, at in runs if name == job]
        assert len(starts) >= 2, (job, runs)
        gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
        assert min(gaps) >= interval, (job, gaps)

    # A restart reads the schedule from sync_state: nothing is due yet with long intervals.
    fake.reset()
    rested = with_intervals(env.runtime, poll_seconds=3600, chapter_seconds=3600)
    again = SyncScheduler(rested, clients=only_mangadex, tick=0.05)
    await again.start()
    try:
        await asyncio.sleep(0.5)
    finally:
        await again.stop(5)
    assert not again.runs
    assert fake.requests_to("mangadex") == []


async def test_a_failing_source_is_retried_after_a_backoff_not_in_a_loop(
    env: SyncEnv, fake: FakeSources, clients: SourceClients
) -> None:
    fake.fail_next("mangadex", 400, count=100)
    only_mangadex = SourceClients(mangadex=clients.mangadex, anilist=None)
    scheduler = SyncScheduler(
        env.runtime, clients=only_mangadex, tick=0.05, backoff_base=timedelta(seconds=0.5)
    )

    def imports() -> list[datetime]:
        return [at for job, _, at in scheduler.runs if job == "mangadex_import"]

    await scheduler.start()
    try:
        async with asyncio.timeout(30):
            while len(imports()) < 2:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # the third attempt waits 1 s (doubled back-off)
        attempts = imports()
    finally:
        await scheduler.stop(5)
    assert len(attempts) == 2, scheduler.runs
    assert (attempts[1] - attempts[0]).total_seconds() >= 0.5, "the back-off was kept"
    assert all(
        outcome == "failed" for job, outcome, _ in scheduler.runs if job == "mangadex_import"
    )
    state = await SyncStore(env.runtime.db, 30).get("mangadex_import")
    assert state.error is not None and "HTTP 400" in state.error
    assert state.metadata["failures"] == 2
    # The poll waits for a completed import (the chapter check does not: the bundled
    # catalog's series have MangaDex ids already).
    assert "mangadex_poll" not in {job for job, _, _ in scheduler.runs}


async def test_disabled_sources_schedule_nothing(env: SyncEnv) -> None:
    scheduler = SyncScheduler(env.runtime, clients=SourceClients(mangadex=None, anilist=None))
    assert scheduler.schedule() == {}
    await scheduler.start()
    await scheduler.stop(1)
    assert not scheduler.runs


async def test_serve_includes_the_sync_part(env: SyncEnv) -> None:
    assert "sync" in PARTS
    (server,) = build_servers(env.runtime, ["sync"])
    assert server.name == "sync" and isinstance(server, SyncScheduler)
    # AniList stays off unless the operator enables it.
    assert "anilist_enrich" not in server.schedule()
