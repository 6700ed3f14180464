"""Reading progress: one row per (user, manga), versioned, pushed to the user's devices.

Versions come from a per-user counter (``users.progress_seq``) bumped in the same
transaction as the write. So a version is unique per user, grows with every write
(per row and per user), and "what changed since version N" is one indexed query
(``changed_since``, used by TCP ``sync``). On PostgreSQL the counter bump also takes
the user's row lock, so one user's writes commit in version order and a reader never
sees version N+1 without N.

Progress is independent of the library: writing progress does not add the series to
the library (see ``services.library``).

Events: after the transaction commits, each write is published on
``progress:<user_id>`` as ``{"type": "progress", "data": <ProgressPublic as JSON>}``,
plus ``"origin"`` when the caller named itself (the TCP door skips its own writes).
"""

from __future__ import annotations

import builtins
import math
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mangahub.bus import Event, EventBus
from mangahub.domain.enums import ReadingStatus
from mangahub.domain.errors import MangaHubError, NotFound, ValidationFailed
from mangahub.domain.schemas import ProgressPublic
from mangahub.domain.text import bad_characters
from mangahub.services._common import (
    fetch_page,
    manga_not_found,
    publish_after_commit,
    upsert,
    valid_id,
)
from mangahub.storage.database import Database
from mangahub.storage.models import Manga, Progress, User
from mangahub.storage.types import utcnow

MAX_CHAPTER = 100_000
MAX_DEVICE_LENGTH = 100
_MAX_VERSION = 2**63 - 1
_STATUSES = frozenset(ReadingStatus)
_UPDATED_COLUMNS = ("chapter", "status", "device", "version", "updated_at")


class ProgressWriteLike(Protocol):
    """One write as ``update_many`` takes it (the TCP batcher's ``ProgressWrite``)."""

    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def manga_id(self) -> int: ...
    @property
    def chapter(self) -> float: ...
    @property
    def status(self) -> ReadingStatus: ...
    @property
    def device(self) -> str | None: ...
    @property
    def origin(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _Write:
    user_id: uuid.UUID
    manga_id: int
    chapter: float
    status: ReadingStatus
    device: str | None
    origin: str | None


Outcome = ProgressPublic | MangaHubError


class ProgressService:
    def __init__(self, db: Database, bus: EventBus) -> None:
        self._db = db
        self._bus = bus

    # --- writes ---------------------------------------------------------------------

    async def update(
        self,
        user_id: uuid.UUID,
        manga_id: int,
        chapter: float,
        status: ReadingStatus = ReadingStatus.READING,
        device: str | None = None,
        *,
        origin: str | None = None,
    ) -> ProgressPublic:
        """Store the user's position in a series (upsert) and push it to their devices.

        NotFound for an unknown manga; ValidationFailed for a chapter that is negative,
        not finite, or beyond the manga's known ``total_chapters``.
        """
        write = _Write(user_id, manga_id, chapter, status, device, origin)
        (outcome,) = await self.update_many([write])
        if isinstance(outcome, MangaHubError):
            raise outcome
        return outcome

    async def update_many(self, writes: Sequence[ProgressWriteLike]) -> list[Outcome]:
        """Store many writes in one transaction (group commit); one outcome per write,
        in order. A write that breaks a rule gets its error and does not affect the
        others; later writes of the same row win and get higher versions."""
        async with self._db.session() as s:
            outcomes = await _store(s, self._db.dialect, writes)
        for write, outcome in zip(writes, outcomes, strict=True):
            if isinstance(outcome, ProgressPublic):
                await publish_after_commit(
                    self._bus, f"progress:{write.user_id}", _event(outcome, write.origin)
                )
        return outcomes

    # --- reads ----------------------------------------------------------------------

    async def get(self, user_id: uuid.UUID, manga_id: int) -> ProgressPublic:
        """The user's progress in one series; NotFound when there is none."""
        row = None
        if valid_id(manga_id):
            async with self._db.session() as s:
                row = await s.get(Progress, (user_id, manga_id))
        if row is None:
            raise NotFound("no progress for this manga", details={"manga_id": manga_id})
        return ProgressPublic.model_validate(row)

    async def list(
        self, user_id: uuid.UUID, page: int = 1, page_size: int = 20
    ) -> tuple[list[ProgressPublic], int]:
        """A page of the user's progress, most recently written first, and the total."""
        stmt = select(Progress).where(Progress.user_id == user_id).order_by(Progress.version.desc())
        async with self._db.session() as s:
            rows, total = await fetch_page(s, stmt, page, page_size)
        return [ProgressPublic.model_validate(row[0]) for row in rows], total

    async def changed_since(
        self, user_id: uuid.UUID, since_version: int
    ) -> builtins.list[ProgressPublic]:
        """Rows written after ``since_version``, oldest first (catch-up after reconnect)."""
        since = min(max(since_version, 0), _MAX_VERSION)
        stmt = (
            select(Progress)
            .where(Progress.user_id == user_id, Progress.version > since)
            .order_by(Progress.version)
        )
        async with self._db.session() as s:
            rows = (await s.scalars(stmt)).all()
        return [ProgressPublic.model_validate(r) for r in rows]


# --- the write path ---------------------------------------------------------------------


async def _store(
    s: AsyncSession, dialect: str, writes: Sequence[ProgressWriteLike]
) -> list[Outcome]:
    outcomes: list[Outcome | None] = [_check_fields(w) for w in writes]
    await _check_against_manga(s, writes, outcomes)
    versions = await _take_versions(s, writes, outcomes)
    now = utcnow()
    stored: dict[tuple[uuid.UUID, int], ProgressPublic] = {}
    for i, write in enumerate(writes):
        if outcomes[i] is None:
            progress = ProgressPublic(
                manga_id=write.manga_id,
                chapter=_normalize(write.chapter),
                status=ReadingStatus(write.status),
                version=versions[i],
                device=write.device,
                updated_at=now,
            )
            outcomes[i] = progress
            # Several writes of one row in a batch: the last (highest version) is stored.
            stored[(write.user_id, write.manga_id)] = progress
    if stored:
        rows = [_row(user_id, p) for (user_id, _), p in stored.items()]
        await s.execute(
            upsert(dialect, Progress, rows, keys=("user_id", "manga_id"), update=_UPDATED_COLUMNS)
        )
    # Every write has its outcome by now; the filter only narrows the type.
    return [o for o in outcomes if o is not None]


def _check_fields(write: ProgressWriteLike) -> MangaHubError | None:
    """Rules that need no database. HTTP and TCP schemas check them too; other
    callers (gRPC, CLI jobs) may not."""
    problems = []
    if not math.isfinite(write.chapter) or not 0 <= write.chapter <= MAX_CHAPTER:
        problems.append({"field": "chapter", "message": f"must be a number in 0..{MAX_CHAPTER}"})
    if write.status not in _STATUSES:
        problems.append({"field": "status", "message": "unknown reading status"})
    if write.device is not None and len(write.device) > MAX_DEVICE_LENGTH:
        problems.append({"field": "device", "message": f"at most {MAX_DEVICE_LENGTH} characters"})
    elif write.device is not None and (bad := bad_characters(write.device)) is not None:
        problems.append({"field": "device", "message": bad})
    return ValidationFailed("invalid progress", details=problems) if problems else None


async def _check_against_manga(
    s: AsyncSession, writes: Sequence[ProgressWriteLike], outcomes: list[Outcome | None]
) -> None:
    """NotFound for unknown manga; ValidationFailed beyond a known chapter count."""
    wanted = {w.manga_id for w, o in zip(writes, outcomes, strict=True) if o is None}
    ids = [m for m in wanted if valid_id(m)]
    totals: dict[int, int | None] = {}
    if ids:
        rows = await s.execute(select(Manga.id, Manga.total_chapters).where(Manga.id.in_(ids)))
        totals = dict(rows.all())
    for i, write in enumerate(writes):
        if outcomes[i] is not None:
            continue
        if write.manga_id not in totals:
            outcomes[i] = manga_not_found(write.manga_id)
            continue
        total = totals[write.manga_id]
        if total is not None and write.chapter > total:
            outcomes[i] = ValidationFailed(
                f"chapter {write.chapter:g} is beyond this manga's {total} chapters",
                details=[{"field": "chapter", "message": f"at most {total}"}],
            )


async def _take_versions(
    s: AsyncSession, writes: Sequence[ProgressWriteLike], outcomes: list[Outcome | None]
) -> dict[int, int]:
    """Reserve the next per-user version for every accepted write, in arrival order."""
    per_user = Counter(w.user_id for w, o in zip(writes, outcomes, strict=True) if o is None)
    last: dict[uuid.UUID, int] = {}
    # Sorted, so two processes batching the same users lock them in the same order.
    for user_id in sorted(per_user):
        seq = await s.scalar(
            update(User)
            .where(User.id == user_id)
            .values(progress_seq=User.progress_seq + per_user[user_id])
            .returning(User.progress_seq)
            .execution_options(synchronize_session=False)
        )
        if seq is not None:
            last[user_id] = seq
    versions: dict[int, int] = {}
    # Walk backwards so each user's earliest write gets the smallest reserved version.
    for i in reversed(range(len(writes))):
        user_id = writes[i].user_id
        if outcomes[i] is not None:
            continue
        if user_id not in last:
            outcomes[i] = NotFound("user not found")
            continue
        versions[i] = last[user_id]
        last[user_id] -= 1
    return versions


def _row(user_id: uuid.UUID, progress: ProgressPublic) -> dict[str, object]:
    return {
        "user_id": user_id,
        "manga_id": progress.manga_id,
        "chapter": progress.chapter,
        "status": progress.status.value,
        "device": progress.device,
        "version": progress.version,
        "updated_at": progress.updated_at,
    }


def _normalize(chapter: float) -> float:
    # Stored as NUMERIC(10, 2): round here so both backends (SQLite keeps any float)
    # return the same value the caller is acknowledged with.
    return round(chapter, 2) + 0.0  # + 0.0 turns -0.0 into 0.0


def _event(progress: ProgressPublic, origin: str | None) -> Event:
    event: Event = {"type": "progress", "data": progress.model_dump(mode="json")}
    if origin is not None:
        event["origin"] = origin
    return event
