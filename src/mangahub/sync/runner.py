"""Running one job under its lease: take it, renew it while the job works, record
how the run ended, give it back.

A job that fails is recorded ``failed`` with its error and keeps its last committed
cursor, so the next run resumes. A run cancelled by shutdown frees the lease without
an outcome (the next runner resumes at once). A runner that loses its lease (it
stalled past the expiry and another took over) stops without writing anything more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mangahub.sources.models import SourceError
from mangahub.sync.jobs import JOBS, JobContext, JobResult
from mangahub.sync.state import JobType, LeaseLost, SyncStore, new_owner_id

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """A run ended with an error (recorded in ``sync_state``)."""

    def __init__(self, job: str, error: str) -> None:
        super().__init__(f"{job} failed: {error}")
        self.job, self.error = job, error


@dataclass(frozen=True, slots=True)
class JobOutcome:
    job: JobType
    counts: dict[str, Any]


def describe(exc: BaseException) -> str:
    """One line for ``sync_state.error`` and the log."""
    if isinstance(exc, SourceError):
        return str(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}".rstrip(": ")


class SyncRunner:
    """Runs jobs for one process; ``owner`` names it in the leases it takes."""

    def __init__(self, store: SyncStore, ctx: JobContext, owner: str | None = None) -> None:
        self.store = store
        self.ctx = ctx
        self.owner = owner or new_owner_id()
        if ctx.states is None:
            ctx.states = store.get

    async def run(self, job: JobType) -> JobOutcome:
        """Run ``job`` to its end. LeaseHeld when another runner has it; JobFailed
        (after recording it) when it fails."""
        state = await self.store.acquire(job, self.owner)
        last: dict[str, Any] = {"cursor": state.cursor, "metadata": dict(state.metadata)}

        async def checkpoint(cursor: str | None, metadata: Mapping[str, Any]) -> None:
            await self.store.checkpoint(job, self.owner, cursor, metadata)
            last.update(cursor=cursor, metadata=dict(metadata))

        body = asyncio.create_task(JOBS[job](self.ctx, state, checkpoint), name=f"sync-{job}")
        lost = asyncio.Event()
        renewer = asyncio.create_task(self._renew(job, body, lost), name=f"sync-{job}-lease")
        try:
            result: JobResult = await body
        except asyncio.CancelledError:
            body.cancel()  # and let it unwind (its worker pool) before the lease goes
            await asyncio.gather(body, return_exceptions=True)
            if lost.is_set():
                raise LeaseLost(f"{job}: the lease was taken over by another runner") from None
            await asyncio.shield(self.store.release(job, self.owner))
            raise
        except LeaseLost:
            raise  # a write found the job taken over: it runs elsewhere, nothing to record
        except Exception as exc:
            error = describe(exc)
            log.debug("sync %s failed: %s", job, error)  # the caller reports it
            failures = int(state.metadata.get("failures", 0)) + 1
            with contextlib.suppress(LeaseLost):
                await self.store.finish(
                    job,
                    self.owner,
                    cursor=last["cursor"],
                    metadata={**last["metadata"], "failures": failures},
                    error=error,
                )
            raise JobFailed(job, error) from exc
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        counts = {**result.counts, "failures": 0}
        await self.store.finish(job, self.owner, cursor=result.cursor, metadata=counts)
        log.info("sync %s done: %s", job, counts)
        return JobOutcome(job, counts)

    async def _renew(
        self, job: JobType, body: asyncio.Task[JobResult], lost: asyncio.Event
    ) -> None:
        interval = max(0.2, self.store.lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.store.renew(job, self.owner)
            except LeaseLost:
                log.error("sync %s: lease lost to another runner; stopping this run", job)
                lost.set()
                body.cancel()
                return
            except Exception:  # a database blip: the next renewal may succeed
                log.warning("sync %s: could not renew the lease", job, exc_info=True)
