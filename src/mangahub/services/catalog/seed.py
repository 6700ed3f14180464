"""The bundled-catalog marker: which bundled file a database was seeded from."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mangahub.services._common import upsert
from mangahub.storage.models import SyncState
from mangahub.storage.types import utcnow

SEED_SYNC_TYPE = "bundled_catalog"


async def seed_marker(s: AsyncSession) -> str | None:
    """Digest of the bundled file this database was seeded from, if any."""
    stmt = select(SyncState.cursor).where(
        SyncState.sync_type == SEED_SYNC_TYPE, SyncState.status == "done"
    )
    return await s.scalar(stmt)


async def mark_seeded(s: AsyncSession, dialect: str, digest: str, series: int) -> None:
    now = utcnow()
    row = {
        "sync_type": SEED_SYNC_TYPE,
        "status": "done",
        "cursor": digest,
        "last_run_at": now,
        "last_success_at": now,
        "error": None,
        "metadata": {"series": series, "source": "MangaDex, AniList, MyAnimeList"},
    }
    await s.execute(
        upsert(
            dialect,
            SyncState,
            [row],
            keys=("sync_type",),
            update=("status", "cursor", "last_run_at", "last_success_at", "error", "metadata"),
        )
    )
