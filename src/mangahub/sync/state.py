"""Job bookkeeping in ``sync_state``: one row per job type, and the lease that keeps
two processes (or two hosts sharing PostgreSQL) from running the same job at once.

The lease is taken with one conditional UPDATE (free, expired, or already ours), so
the database decides the race; every later write of the holder (cursor, renewal,
finish) is conditional on still owning it, so a holder that lost its lease (paused
past the expiry, then taken over) can no longer move the cursor.
Lease times come from each process's clock: keep hosts NTP-synced and the lease
(``sync_lease_seconds``) far longer than any clock skew.
"""

from __future__ import annotations

import enum
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mangahub.storage.database import Database
from mangahub.storage.models import SyncState
from mangahub.storage.types import utcnow

JobType = Literal["mangadex_import", "mangadex_poll", "mangadex_chapters", "anilist_enrich"]
JOB_TYPES: tuple[JobType, ...] = (
    "mangadex_import",
    "mangadex_poll",
    "mangadex_chapters",
    "anilist_enrich",
)
_MAX_ERROR = 2000


class JobStatus(enum.StrEnum):
    IDLE = "idle"  # never run
    RUNNING = "running"  # a lease holder is on it (or died on it: see lease_expires_at)
    FAILED = "failed"  # the last run ended with an error
    DONE = "done"  # the last run finished


class LeaseHeld(Exception):
    """Another runner holds the job's lease."""

    def __init__(self, job: str, owner: str | None, expires_at: datetime | None) -> None:
        until = f" until {expires_at.isoformat(timespec='seconds')}" if expires_at else ""
        super().__init__(f"{job} is already running elsewhere ({owner or 'unknown'}{until})")
        self.job, self.owner, self.expires_at = job, owner, expires_at


class LeaseLost(Exception):
    """The lease expired and another runner took the job over."""


@dataclass(frozen=True, slots=True)
class JobState:
    """A snapshot of one ``sync_state`` row."""

    job: str
    status: JobStatus = JobStatus.IDLE
    cursor: str | None = None
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None


def new_owner_id() -> str:
    """Who holds a lease: host, pid and a random part (a restarted pid differs)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SyncStore:
    """Reads and writes ``sync_state`` rows for the sync jobs."""

    def __init__(self, db: Database, lease_seconds: float) -> None:
        self._db = db
        self.lease = timedelta(seconds=lease_seconds)

    async def get(self, job: str) -> JobState:
        async with self._db.session() as s:
            row = await s.get(SyncState, job)
            return _state(job, row)

    async def acquire(self, job: str, owner: str) -> JobState:
        """Take the job's lease (free, expired, or ours); LeaseHeld otherwise. Marks
        the job running and returns its state (the cursor to resume from)."""
        now = utcnow()
        async with self._db.session() as s:
            await s.execute(_insert_ignore(self._db.dialect, job))
        # The write comes first in its transaction: on SQLite a read first would pin a
        # snapshot that a concurrent writer could invalidate before our write.
        async with self._db.session() as s:
            taken = await s.execute(
                update(SyncState)
                .where(
                    SyncState.sync_type == job,
                    or_(
                        SyncState.lease_owner.is_(None),
                        SyncState.lease_owner == owner,
                        SyncState.lease_expires_at.is_(None),
                        SyncState.lease_expires_at < now,
                    ),
                )
                .values(
                    lease_owner=owner,
                    lease_expires_at=now + self.lease,
                    status=JobStatus.RUNNING.value,
                    last_run_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            current = _state(job, await s.get(SyncState, job, populate_existing=True))
            if _rowcount(taken) != 1:
                raise LeaseHeld(job, current.lease_owner, current.lease_expires_at)
        return current

    async def renew(self, job: str, owner: str) -> None:
        """Push the lease's expiry forward; LeaseLost when it is no longer ours."""
        await self._owned_update(job, owner, {"lease_expires_at": utcnow() + self.lease})

    async def checkpoint(
        self, job: str, owner: str, cursor: str | None, metadata: Mapping[str, Any]
    ) -> None:
        """Commit progress: a crash after this resumes from ``cursor``."""
        await self._owned_update(
            job,
            owner,
            {
                "cursor": cursor,
                "metadata": dict(metadata),
                "lease_expires_at": utcnow() + self.lease,
            },
        )

    async def finish(
        self,
        job: str,
        owner: str,
        *,
        cursor: str | None,
        metadata: Mapping[str, Any],
        error: str | None = None,
    ) -> None:
        """End the run (done, or failed with ``error``) and free the lease."""
        values: dict[str, Any] = {
            "status": (JobStatus.FAILED if error else JobStatus.DONE).value,
            "cursor": cursor,
            "metadata": dict(metadata),
            "error": error[:_MAX_ERROR] if error else None,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if error is None:
            values["last_success_at"] = utcnow()
        await self._owned_update(job, owner, values)

    async def release(self, job: str, owner: str) -> None:
        """Free the lease without recording an outcome (shutdown mid-run: the cursor
        stays, status stays running, and the next runner resumes at once)."""
        async with self._db.session() as s:
            await s.execute(
                update(SyncState)
                .where(SyncState.sync_type == job, SyncState.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
                .execution_options(synchronize_session=False)
            )

    async def _owned_update(self, job: str, owner: str, values: Mapping[str, Any]) -> None:
        async with self._db.session() as s:
            result = await s.execute(
                update(SyncState)
                .where(SyncState.sync_type == job, SyncState.lease_owner == owner)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if _rowcount(result) != 1:
                raise LeaseLost(f"{job}: the lease was taken over by another runner")


def _insert_ignore(dialect: str, job: str) -> Any:
    values = {"sync_type": job, "status": JobStatus.IDLE.value, "metadata": {}}
    if dialect == "postgresql":
        return postgresql.insert(SyncState).values(values).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(SyncState).values(values).on_conflict_do_nothing()
    return insert(SyncState).values(values)  # pragma: no cover - two dialects supported


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _state(job: str, row: SyncState | None) -> JobState:
    if row is None:
        return JobState(job)
    return JobState(
        job=job,
        status=JobStatus(row.status),
        cursor=row.cursor,
        last_run_at=row.last_run_at,
        last_success_at=row.last_success_at,
        error=row.error,
        metadata=dict(row.metadata_ or {}),
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
    )


async def all_states(db: Database) -> list[JobState]:
    """Every sync job's state, in JOB_TYPES order (never-run jobs as idle)."""
    async with db.session() as s:
        rows = {
            r.sync_type: r
            for r in (
                await s.scalars(select(SyncState).where(SyncState.sync_type.in_(JOB_TYPES)))
            ).all()
        }
        return [_state(job, rows.get(job)) for job in JOB_TYPES]
