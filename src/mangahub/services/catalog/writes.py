"""Checks and steps of writing single series: the catalog lock, genre and source-id
lookups, free slugs, field checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mangahub.domain.errors import Conflict, ValidationFailed
from mangahub.domain.schemas import MangaCreate
from mangahub.services._common import MAX_ROW_ID, valid_id
from mangahub.services.catalog.params import invalid
from mangahub.services.catalog.text import unique_slug
from mangahub.storage.models import Genre, Manga

# pg_advisory_xact_lock key of the catalog lock ("MHCA").
_CATALOG_LOCK_KEY = 0x4D484341


async def lock_catalog(s: AsyncSession, dialect: str) -> None:
    """Serialize catalog writers until the transaction ends; must come first in it."""
    if dialect == "postgresql":
        await s.execute(select(func.pg_advisory_xact_lock(_CATALOG_LOCK_KEY)))
    else:
        # A no-op write takes SQLite's write lock (waiting for it under the busy
        # timeout), and since nothing was read before it, every later read in this
        # transaction sees what the previous writer committed.
        await s.execute(text("UPDATE manga SET id = id WHERE 0"))


async def genres_by_id(s: AsyncSession, genre_ids: Sequence[int]) -> list[Genre]:
    wanted = set(genre_ids)
    valid = {gid for gid in wanted if valid_id(gid)}
    found = list((await s.scalars(select(Genre).where(Genre.id.in_(valid)))).all()) if valid else []
    unknown = sorted(wanted - {g.id for g in found})
    if unknown:
        raise ValidationFailed(
            "unknown genre ids",
            details=[{"field": "genre_ids", "message": f"unknown genre ids: {unknown}"}],
        )
    return sorted(found, key=lambda g: g.name)


async def reject_taken_ids(
    s: AsyncSession, mangadex_id: str | None, anilist_id: int | None
) -> None:
    for column, value in (("mangadex_id", mangadex_id), ("anilist_id", anilist_id)):
        if value is not None:
            taken = await s.scalar(select(Manga.id).where(getattr(Manga, column) == value))
            if taken is not None:
                raise Conflict(
                    f"another series has this {column}",
                    details={"field": column, "manga_id": taken},
                )


async def free_slug(s: AsyncSession, base: str) -> str:
    """The first of ``base``, ``base-2``… no series uses (caller holds the catalog lock)."""
    similar = select(Manga.slug).where(
        or_(Manga.slug == base, Manga.slug.startswith(f"{base}-", autoescape=True))
    )
    return unique_slug(base, set((await s.scalars(similar)).all()))


def check_create(data: MangaCreate) -> None:
    _check_no_nul(
        {
            "description": data.description,
            "cover_url": data.cover_url,
            "mangadex_id": data.mangadex_id,
        }
    )
    if data.anilist_id is not None and data.anilist_id > MAX_ROW_ID:
        raise invalid("anilist_id", f"must be at most {MAX_ROW_ID}")


_NOT_NULL = frozenset({"title", "alt_titles", "authors", "status", "description", "genre_ids"})


def check_update(changes: Mapping[str, Any]) -> None:
    nulls = sorted(name for name in _NOT_NULL if name in changes and changes[name] is None)
    if nulls:
        raise ValidationFailed(
            "these fields cannot be null",
            details=[{"field": name, "message": "must not be null"} for name in nulls],
        )
    _check_no_nul({k: changes.get(k) for k in ("description", "cover_url")})


def _check_no_nul(values: Mapping[str, str | None]) -> None:
    # Titles and names reject control characters in the schema already; these free
    # fields only need NUL kept out, which PostgreSQL cannot store.
    bad = [name for name, value in values.items() if value is not None and "\x00" in value]
    if bad:
        raise ValidationFailed(
            "NUL characters are not allowed",
            details=[{"field": name, "message": "must not contain NUL"} for name in bad],
        )
