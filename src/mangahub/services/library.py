"""A reader's library: which series they follow, each with a reading status.

Library and progress are independent on purpose: writing progress does not add the
series to the library (and removing it from the library keeps the progress). A
reader may track chapters of something they never "added", and the new-chapter
notification targets both sets (see ``NotificationService.recipients_for_manga``).
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mangahub.domain.enums import ReadingStatus
from mangahub.domain.errors import Conflict, NotFound
from mangahub.domain.schemas import LibraryEntryPublic
from mangahub.services._common import fetch_page, load_manga, require_manga, valid_id
from mangahub.storage.database import Database
from mangahub.storage.models import LibraryEntry


class LibraryService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(
        self, user_id: uuid.UUID, page: int, page_size: int
    ) -> tuple[list[LibraryEntryPublic], int]:
        """The user's entries, most recently added first."""
        stmt = (
            select(LibraryEntry)
            .where(LibraryEntry.user_id == user_id)
            # manga_id breaks ties so pages never overlap when added_at is equal.
            .order_by(LibraryEntry.added_at.desc(), LibraryEntry.manga_id.desc())
        )
        async with self._db.session() as s:
            rows, total = await fetch_page(s, stmt, page, page_size)
            return [LibraryEntryPublic.model_validate(row[0]) for row in rows], total

    async def add(
        self, user_id: uuid.UUID, manga_id: int, status: ReadingStatus = ReadingStatus.PLAN_TO_READ
    ) -> LibraryEntryPublic:
        """Add a series; NotFound for an unknown manga, Conflict if already there."""
        try:
            async with self._db.session() as s:
                manga = await load_manga(s, manga_id)
                await _reject_present(s, user_id, manga_id)
                entry = LibraryEntry(user_id=user_id, manga=manga, status=status.value)
                s.add(entry)
                await s.flush()
                return LibraryEntryPublic.model_validate(entry)
        except IntegrityError:
            # A concurrent add of the same pair won the race (or the manga was deleted
            # meanwhile): answer as if we had arrived second.
            async with self._db.session() as s:
                await require_manga(s, manga_id)
                await _reject_present(s, user_id, manga_id)
            raise

    async def update(
        self, user_id: uuid.UUID, manga_id: int, status: ReadingStatus
    ) -> LibraryEntryPublic:
        """Change the reading status of an entry; NotFound if it is not in the library."""
        async with self._db.session() as s:
            entry = await _find(s, user_id, manga_id)
            entry.status = status.value
            await s.flush()
            return LibraryEntryPublic.model_validate(entry)

    async def remove(self, user_id: uuid.UUID, manga_id: int) -> None:
        """Remove an entry; NotFound if it is not in the library."""
        if valid_id(manga_id):
            async with self._db.session() as s:
                removed = await s.scalar(
                    delete(LibraryEntry)
                    .where(LibraryEntry.user_id == user_id, LibraryEntry.manga_id == manga_id)
                    .returning(LibraryEntry.manga_id)
                )
            if removed is not None:
                return
        raise _not_in_library(manga_id)


async def _find(s: AsyncSession, user_id: uuid.UUID, manga_id: int) -> LibraryEntry:
    entry = None
    if valid_id(manga_id):
        entry = await s.scalar(
            select(LibraryEntry).where(
                LibraryEntry.user_id == user_id, LibraryEntry.manga_id == manga_id
            )
        )
    if entry is None:
        raise _not_in_library(manga_id)
    return entry


async def _reject_present(s: AsyncSession, user_id: uuid.UUID, manga_id: int) -> None:
    present = await s.scalar(
        select(LibraryEntry.manga_id).where(
            LibraryEntry.user_id == user_id, LibraryEntry.manga_id == manga_id
        )
    )
    if present is not None:
        raise Conflict("manga is already in your library", details={"manga_id": manga_id})


def _not_in_library(manga_id: int) -> NotFound:
    return NotFound("manga is not in your library", details={"manga_id": manga_id})
