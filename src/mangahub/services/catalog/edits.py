"""What catalog upgrades must respect: fields an admin edited, series an admin deleted."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from mangahub.services._common import upsert
from mangahub.storage.models import CatalogEdit, CatalogTombstone, Manga
from mangahub.storage.types import utcnow


async def record_edits(s: AsyncSession, dialect: str, manga_id: int, fields: Iterable[str]) -> None:
    """Mark ``fields`` (MangaUpdate names) of a series as the admin's from now on."""
    now = utcnow()
    rows = [{"manga_id": manga_id, "field": name, "edited_at": now} for name in sorted(set(fields))]
    if rows:
        await s.execute(
            upsert(dialect, CatalogEdit, rows, keys=("manga_id", "field"), update=("edited_at",))
        )


async def record_tombstones(s: AsyncSession, dialect: str, manga: Manga) -> None:
    """Remember the source ids of a series being deleted, so no import re-creates it."""
    now = utcnow()
    ids = {"mangadex": manga.mangadex_id, "anilist": manga.anilist_id, "mal": manga.mal_id}
    rows = [
        {"source": source, "source_id": str(value), "deleted_at": now}
        for source, value in ids.items()
        if value is not None
    ]
    if rows:
        await s.execute(
            upsert(
                dialect,
                CatalogTombstone,
                rows,
                keys=("source", "source_id"),
                update=("deleted_at",),
            )
        )
