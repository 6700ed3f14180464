"""One runner per job at a time, across processes: the lease in sync_state."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from mangahub.storage.models import Manga, SyncState
from mangahub.storage.types import utcnow
from mangahub.sync.runner import SyncRunner
from mangahub.sync.state import LeaseHeld, LeaseLost, SyncStore
from tests.fakes.sources import FakeSources
from tests.sync.conftest import MakeRunner, SyncEnv


async def state(env: SyncEnv) -> SyncState:
    async with env.runtime.db.session() as s:
        row = await s.get(SyncState, "mangadex_import")
        assert row is not None
        return row


async def manga_counts(env: SyncEnv) -> tuple[int, int]:
    async with env.runtime.db.session() as s:
        rows = await s.scalar(select(func.count()).select_from(Manga))
        unique = await s.scalar(select(func.count(func.distinct(Manga.mangadex_id))))
    return int(rows or 0), int(unique or 0)


async def test_two_runners_at_once_one_runs_the_other_is_refused(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    fake.delay("mangadex", 0.2)
    first, second = make_runner(owner="host-a:1"), make_runner(owner="host-b:2")
    results = await asyncio.gather(
        first.run("mangadex_import"), second.run("mangadex_import"), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, LeaseHeld)]
    ran = [r for r in results if not isinstance(r, BaseException)]
    assert len(refused) == 1 and len(ran) == 1, results
    assert "already running elsewhere" in str(refused[0])
    # Only one import's worth of requests reached the source.
    assert len([r for r in fake.requests_to("mangadex") if r.path == "/manga"]) == 2
    assert await manga_counts(env) == (132, 132)


async def test_the_lease_is_renewed_while_the_job_runs(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    fake.delay("mangadex", 0.7)  # two pages: ~1.4 s, longer than the 1 s lease
    template = make_runner()
    holder = SyncRunner(SyncStore(env.runtime.db, lease_seconds=1), template.ctx, "holder")
    other = SyncRunner(SyncStore(env.runtime.db, lease_seconds=1), template.ctx, "other")
    running = asyncio.create_task(holder.run("mangadex_import"))
    await asyncio.sleep(1.2)  # past the first expiry: only renewal keeps it
    assert not running.done()
    with pytest.raises(LeaseHeld):
        await other.run("mangadex_import")
    await running
    assert (await state(env)).status == "done"


async def test_an_expired_lease_of_a_dead_holder_is_taken_over(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    store = SyncStore(env.runtime.db, lease_seconds=60)
    await store.acquire("mangadex_import", "dead-host:99")
    with pytest.raises(LeaseHeld) as held:
        await make_runner().run("mangadex_import")
    assert held.value.owner == "dead-host:99"
    async with env.runtime.db.session() as s:
        await s.execute(
            update(SyncState)
            .where(SyncState.sync_type == "mangadex_import")
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    outcome = await make_runner().run("mangadex_import")
    assert outcome.counts["series_seen"] == 132
    # The old holder, back from the dead, can no longer move the cursor.
    with pytest.raises(LeaseLost):
        await store.checkpoint("mangadex_import", "dead-host:99", '{"offset": 0}', {})
    assert (await state(env)).cursor is None


@pytest.mark.slow
async def test_an_import_killed_after_its_first_page_resumes_without_duplicates(
    env: SyncEnv, fake: FakeSources
) -> None:
    fake.delay("mangadex", 1.0)
    process_env = env.backend.process_env(
        MANGAHUB_MANGADEX_URL=fake.mangadex_url,
        # Long enough to outlast a second process's start-up on a busy machine.
        MANGAHUB_SYNC_LEASE_SECONDS="10",
        MANGAHUB_MANGADEX_REQUESTS_PER_SECOND="50",
    )
    command = [sys.executable, "-m", "mangahub", "sources", "sync", "mangadex", "--job", "import"]

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *command,
            env=process_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    crashing = await start()
    try:
        async with asyncio.timeout(60):
            while True:
                row = await _row_or_none(env)
                if row is not None and row.cursor is not None:
                    break
                assert crashing.returncode is None, await crashing.communicate()
                await asyncio.sleep(0.05)
    finally:
        os.kill(crashing.pid, signal.SIGKILL)
        await crashing.communicate()
    assert crashing.returncode == -signal.SIGKILL
    crashed = await state(env)
    assert crashed.status == "running" and crashed.lease_owner is not None
    assert '"offset": 100' in (crashed.cursor or "")
    assert await manga_counts(env) == (100, 100)

    # At once: the dead holder's lease has not expired yet.
    refused = await start()
    _, err = await refused.communicate()
    assert refused.returncode == 5, err
    assert "already running elsewhere" in err.decode() and len(err.decode().splitlines()) == 1

    assert crashed.lease_expires_at is not None
    await asyncio.sleep((crashed.lease_expires_at - utcnow()).total_seconds() + 0.1)
    fake.reset()
    resumed = await start()
    out, err = await resumed.communicate()
    assert resumed.returncode == 0, err.decode()
    pages = [r for r in fake.requests_to("mangadex") if r.path == "/manga"]
    assert [r.param("offset") for r in pages] == ["100"]
    assert await manga_counts(env) == (132, 132)
    done = await state(env)
    assert done.status == "done" and done.lease_owner is None and done.cursor is None


async def _row_or_none(env: SyncEnv) -> SyncState | None:
    async with env.runtime.db.session() as s:
        return await s.get(SyncState, "mangadex_import")


async def test_a_holder_taken_over_mid_run_reports_the_lost_lease_not_a_failure(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    fake.delay("mangadex", 0.4)
    holder = SyncRunner(SyncStore(env.runtime.db, lease_seconds=60), make_runner().ctx, "holder")
    running = asyncio.create_task(holder.run("mangadex_import"))
    async with asyncio.timeout(10):
        while (row := await _row_or_none(env)) is None or row.cursor is None:
            await asyncio.sleep(0.02)
    # The holder stalls past its expiry (simulated) and another runner takes over.
    async with env.runtime.db.session() as s:
        await s.execute(
            update(SyncState)
            .where(SyncState.sync_type == "mangadex_import")
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    await SyncStore(env.runtime.db, lease_seconds=60).acquire("mangadex_import", "thief")
    # Its next checkpoint finds the lease gone: that is "running elsewhere" (the CLI's
    # exit 5), not a failure of the job, and nothing of the old run is recorded.
    with pytest.raises(LeaseLost):
        await running
    taken = await state(env)
    assert taken.lease_owner == "thief" and taken.status == "running" and taken.error is None
