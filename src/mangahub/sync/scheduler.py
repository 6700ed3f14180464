"""The ``sync`` part of ``mangahub serve``: runs the sync jobs when they are due.

Due times come from ``sync_state`` (not from when this process started), so a
restart never re-runs a job early, and several processes running the part share one
schedule: whoever takes the lease runs the job, the others skip it.

- ``mangadex_import``: once, until it has completed (a crashed run resumes);
- ``mangadex_poll``: every ``sync_poll_interval_hours`` after the import is done;
- ``mangadex_chapters``: every ``sync_chapter_interval_hours``;
- ``anilist_enrich``: every ``sync_poll_interval_hours``, only with ``anilist_enabled``.

A disabled source's jobs are never scheduled. A failed job is retried after a
back-off (1 min, doubling, at most its interval), with one log line per failure, so
an offline install does not spin on an unreachable source.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from mangahub.app import Runtime
from mangahub.sources.registry import SourceClients
from mangahub.storage.types import utcnow
from mangahub.sync.jobs import JobUnavailable
from mangahub.sync.runner import JobFailed, SyncRunner
from mangahub.sync.setup import build_runner
from mangahub.sync.state import JobState, JobStatus, JobType, LeaseHeld, LeaseLost

log = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(minutes=1)
# How many finished runs the scheduler remembers (for status and tests).
RUN_HISTORY = 100


def backoff(failures: int, interval: timedelta, base: timedelta = BACKOFF_BASE) -> timedelta:
    """Wait after the ``failures``-th failure in a row: base, doubling, capped at interval."""
    wait: timedelta = base * (2 ** max(0, min(failures - 1, 20)))
    return min(interval, wait)


def due_at(
    state: JobState, interval: timedelta | None, now: datetime, base: timedelta = BACKOFF_BASE
) -> datetime | None:
    """When the job should next run; None for never (a one-off job that completed).
    ``interval`` None marks the one-off import."""
    if state.status is JobStatus.RUNNING:
        # Someone holds it, or held it and died: try once the lease has expired.
        return state.lease_expires_at or now
    if state.status is JobStatus.FAILED:
        wait = backoff(
            int(state.metadata.get("failures", 1)), interval or timedelta(hours=24), base
        )
        return (state.last_run_at or now) + wait
    if state.status is JobStatus.DONE:
        if interval is None:
            return None
        return (state.last_success_at or state.last_run_at or now) + interval
    return now  # never run


class SyncScheduler:
    """A ManagedServer with no socket: ``address`` is the configured host, port 0."""

    name = "sync"

    def __init__(
        self,
        runtime: Runtime,
        *,
        clients: SourceClients | None = None,
        tick: float = 60.0,
        backoff_base: timedelta = BACKOFF_BASE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._runtime = runtime
        # The process's clients by default: federated search and sync share each
        # source's rate limit.
        self._clients = clients if clients is not None else runtime.sources
        self._tick = tick
        self._backoff_base = backoff_base
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.runner: SyncRunner | None = None
        # (job, "done" | "failed", started at): the latest runs, newest last.
        self.runs: deque[tuple[JobType, str, datetime]] = deque(maxlen=RUN_HISTORY)

    @property
    def address(self) -> tuple[str, int]:
        return self._runtime.settings.host, 0

    def schedule(self) -> dict[JobType, timedelta | None]:
        """The enabled jobs and their intervals (None: run once)."""
        settings = self._runtime.settings
        clients = self._clients
        jobs: dict[JobType, timedelta | None] = {}
        if clients is not None and clients.mangadex is not None:
            jobs["mangadex_import"] = None
            jobs["mangadex_poll"] = timedelta(hours=settings.sync_poll_interval_hours)
            jobs["mangadex_chapters"] = timedelta(hours=settings.sync_chapter_interval_hours)
        if clients is not None and clients.anilist is not None:
            jobs["anilist_enrich"] = timedelta(hours=settings.sync_poll_interval_hours)
        return jobs

    async def start(self) -> None:
        self.runner = build_runner(self._runtime, self._clients)
        jobs = self.schedule()
        if jobs:
            log.info("sync: scheduling %s", ", ".join(jobs))
        else:
            log.info("sync: every source is disabled; nothing to schedule")
        self._task = asyncio.create_task(self._loop(), name="sync-scheduler")

    async def stop(self, timeout: float) -> None:
        if self._task is not None:
            self._task.cancel()  # a running job frees its lease; its cursor is committed
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.gather(self._task, return_exceptions=True), timeout)
            self._task = None

    async def _loop(self) -> None:
        assert self.runner is not None
        jobs = self.schedule()
        while jobs:
            next_due: datetime | None = None
            for job, interval in jobs.items():
                try:
                    when = await self._due(job, interval)
                    if when is not None and when <= self._clock():
                        await self._run(job, interval)
                        when = await self._due(job, interval)
                except Exception:  # the database is away: try again next tick
                    log.warning("sync: could not read the schedule", exc_info=True)
                    break
                if when is not None and (next_due is None or when < next_due):
                    next_due = when
            wait = self._tick
            if next_due is not None:
                wait = min(wait, max(0.05, (next_due - self._clock()).total_seconds()))
            await asyncio.sleep(wait)

    async def _due(self, job: JobType, interval: timedelta | None) -> datetime | None:
        assert self.runner is not None
        if job == "mangadex_poll":
            imported = await self.runner.store.get("mangadex_import")
            if imported.last_success_at is None:
                return None  # the import's own walk covers new series until it is done
        state = await self.runner.store.get(job)
        return due_at(state, interval, self._clock(), self._backoff_base)

    async def _run(self, job: JobType, interval: timedelta | None) -> None:
        assert self.runner is not None
        started = self._clock()
        try:
            outcome = await self.runner.run(job)
        except LeaseHeld as exc:
            log.debug("sync: %s", exc)
        except LeaseLost as exc:
            log.warning("sync: %s", exc)
        except JobUnavailable as exc:
            log.warning("sync: %s skipped: %s", job, exc)
        except JobFailed as exc:
            state = await self.runner.store.get(job)
            wait = backoff(
                int(state.metadata.get("failures", 1)),
                interval or timedelta(hours=24),
                self._backoff_base,
            )
            log.warning("sync: %s; next attempt in %.0f s", exc, wait.total_seconds())
            self.runs.append((job, "failed", started))
        except Exception:
            log.exception("sync: %s crashed", job)
            self.runs.append((job, "failed", started))
        else:
            log.info("sync: %s done %s", job, outcome.counts)
            self.runs.append((job, "done", started))
