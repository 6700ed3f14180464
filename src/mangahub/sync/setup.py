"""Wiring a sync runner from a process's runtime and source clients."""

from __future__ import annotations

from datetime import timedelta

from mangahub.app import Runtime
from mangahub.services.source_sync import SourceSyncService
from mangahub.sources.registry import SourceClients
from mangahub.sync.jobs import JobContext, Progress
from mangahub.sync.runner import SyncRunner
from mangahub.sync.state import SyncStore


def build_runner(
    runtime: Runtime,
    clients: SourceClients,
    *,
    progress: Progress | None = None,
    owner: str | None = None,
) -> SyncRunner:
    """A runner whose jobs share ``clients`` (one rate limiter per source)."""
    settings = runtime.settings
    ctx = JobContext(
        catalog=runtime.catalog,
        chapters=SourceSyncService(runtime.db, runtime.notifications, runtime.bus),
        notifications=runtime.notifications,
        mangadex=clients.mangadex,
        anilist=clients.anilist,
        workers=settings.sync_workers,
        poll_interval=timedelta(hours=settings.sync_poll_interval_hours),
        progress=progress,
    )
    return SyncRunner(SyncStore(runtime.db, settings.sync_lease_seconds), ctx, owner)
