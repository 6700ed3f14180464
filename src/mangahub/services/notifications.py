"""Notifications: stored first, then announced.

Every notification is a row before it is an event, so a user who is offline when it
is raised still gets it: over HTTP, or from the UDP door on their next SUBSCRIBE
(undelivered rows). Events go to ``notify:<user_id>`` as
``{"type": "notification", "user_id": …, <NotificationPublic fields>}``.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mangahub.bus import EventBus
from mangahub.domain.enums import NotificationKind
from mangahub.domain.errors import NotFound, ValidationFailed
from mangahub.domain.schemas import NotificationPublic
from mangahub.services._common import (
    MAX_ROW_ID,
    fetch_page,
    publish_after_commit,
    require_manga,
    valid_id,
)
from mangahub.storage.database import Database
from mangahub.storage.models import Notification, ReadingEntry, User
from mangahub.storage.types import utcnow

MAX_TITLE_LENGTH = 500


class NotificationService:
    def __init__(self, db: Database, bus: EventBus) -> None:
        self._db = db
        self._bus = bus

    # --- the reader's side ------------------------------------------------------------

    async def list(
        self, user_id: uuid.UUID, unread_only: bool, page: int, page_size: int
    ) -> tuple[builtins.list[NotificationPublic], int]:
        """The user's notifications, newest first; only unread ones if asked."""
        stmt = select(Notification).where(Notification.user_id == user_id)
        if unread_only:
            stmt = stmt.where(Notification.read.is_(False))
        stmt = stmt.order_by(Notification.created_at.desc(), Notification.id.desc())
        async with self._db.session() as s:
            rows, total = await fetch_page(s, stmt, page, page_size)
        return [NotificationPublic.model_validate(r[0]) for r in rows], total

    async def mark_read(self, user_id: uuid.UUID, notification_id: int) -> NotificationPublic:
        """Mark one of the user's notifications read. Another user's id answers exactly
        like an unknown one, so ids reveal nothing."""
        async with self._db.session() as s:
            row = await _own(s, user_id, notification_id)
            row.read = True
            await s.flush()
            return NotificationPublic.model_validate(row)

    async def mark_all_read(self, user_id: uuid.UUID) -> int:
        """Mark every unread notification of the user read; returns how many changed."""
        async with self._db.session() as s:
            changed = await s.scalars(
                update(Notification)
                .where(Notification.user_id == user_id, Notification.read.is_(False))
                .values(read=True)
                .returning(Notification.id)
                .execution_options(synchronize_session=False)
            )
            return len(changed.all())

    # --- raising notifications -------------------------------------------------------

    async def notify_users(
        self,
        user_ids: Sequence[uuid.UUID],
        kind: NotificationKind,
        manga_id: int | None,
        title: str,
        message: str,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Store one notification per recipient (one batched insert), then publish each
        on its user's topic. Returns the number stored."""
        recipients = builtins.list(dict.fromkeys(user_ids))  # de-duplicated, order kept
        kind = _check(kind, title)
        if not recipients:
            return 0
        now = utcnow()
        values = [
            {
                "user_id": user_id,
                "kind": kind.value,
                "manga_id": manga_id,
                "title": title,
                "message": message,
                "data": dict(data or {}),
                "created_at": now,
            }
            for user_id in recipients
        ]
        async with self._db.session() as s:
            if manga_id is not None:
                await require_manga(s, manga_id)
            stored = (await s.scalars(insert(Notification).returning(Notification), values)).all()
        for row in stored:
            await publish_after_commit(self._bus, f"notify:{row.user_id}", _event(row))
        return len(stored)

    async def recipients_for_manga(self, manga_id: int) -> builtins.list[uuid.UUID]:
        """Users following a series: the readers who list it."""
        if not valid_id(manga_id):
            return []
        stmt = select(ReadingEntry.user_id).where(ReadingEntry.manga_id == manga_id)
        async with self._db.session() as s:
            found = (await s.scalars(stmt)).all()
        return sorted(found)

    # --- the UDP door and the internal trigger ---------------------------------------
    # Who receives what is decided here, never in a door.

    # Recipients per insert-then-publish round: bounds a statement and the memory of
    # one round however many users there are.
    NOTIFY_BATCH = 1000

    async def undelivered(
        self, user_id: uuid.UUID, limit: int = 64, after_id: int = 0
    ) -> builtins.list[NotificationPublic]:
        """The user's notifications not yet acknowledged over UDP, oldest first: at most
        ``limit`` (1..100) with id greater than ``after_id`` (the UDP backlog pages)."""
        stmt = (
            select(Notification)
            .where(
                Notification.user_id == user_id,
                Notification.delivered.is_(False),
                Notification.id > max(0, min(after_id, MAX_ROW_ID)),
            )
            .order_by(Notification.id)
            .limit(max(1, min(limit, 100)))
        )
        async with self._db.session() as s:
            rows = (await s.scalars(stmt)).all()
        return [NotificationPublic.model_validate(r) for r in rows]

    async def mark_delivered(self, user_id: uuid.UUID, notification_id: int) -> bool:
        """Mark one of the user's notifications delivered; False if it is not theirs,
        unknown, or was delivered already."""
        return await self.mark_delivered_many([(user_id, notification_id)]) == 1

    async def mark_delivered_many(self, acks: Sequence[tuple[uuid.UUID, int]]) -> int:
        """Mark notifications delivered, each only for its own user (a foreign or unknown
        id changes nothing), in one transaction of two statements however many users
        the batch spans; returns how many changed."""
        claimed = {(user_id, nid) for user_id, nid in acks if valid_id(nid)}
        if not claimed:
            return 0
        ids = sorted({nid for _, nid in claimed})
        async with self._db.session() as s:
            owners = await s.execute(
                select(Notification.id, Notification.user_id).where(Notification.id.in_(ids))
            )
            own = sorted(nid for nid, owner in owners if (owner, nid) in claimed)
            if not own:
                return 0
            result = await s.scalars(
                update(Notification)
                .where(Notification.id.in_(own), Notification.delivered.is_(False))
                .values(delivered=True)
                .returning(Notification.id)
                .execution_options(synchronize_session=False)
            )
            return len(result.all())

    async def notify_new_chapter(
        self, manga_id: int, title: str, chapter: float, old_chapter: float | None = None
    ) -> int:
        """``new_chapter`` to the series' followers (the readers who list it); returns how
        many were stored."""
        await self._require_manga(manga_id)
        message = f"Chapter {self._chapter_text(chapter)} of {title} is out"
        data = {"chapter": chapter, "previous_chapter": old_chapter}
        recipients = await self.recipients_for_manga(manga_id)
        return await self._notify_in_batches(
            recipients, NotificationKind.NEW_CHAPTER, manga_id, title, message, data
        )

    async def notify_manga_update(
        self, manga_id: int, title: str, changes: Sequence[Mapping[str, Any]]
    ) -> int:
        """``manga_update`` to the series' followers; ``changes`` are
        ``{field, old_value, new_value}`` and travel whole in ``data``."""
        if not changes:
            raise ValidationFailed(
                "no changes", details=[{"field": "changes", "message": "at least one"}]
            )
        await self._require_manga(manga_id)
        described = "; ".join(
            f"{c.get('field')}: {self._value_text(c.get('old_value'))} → "
            f"{self._value_text(c.get('new_value'))}"
            for c in changes
        )
        message = f"{title} was updated: {described}"
        if len(message) > 2000:
            message = message[:1999] + "…"
        data = {"changes": [dict(c) for c in changes]}
        recipients = await self.recipients_for_manga(manga_id)
        return await self._notify_in_batches(
            recipients, NotificationKind.MANGA_UPDATE, manga_id, title, message, data
        )

    async def notify_new_manga(self, manga_id: int, title: str) -> int:
        """``new_manga`` to every user, walking the users in id order one batch at a
        time (each batch stored, then published); returns how many were stored."""
        await self._require_manga(manga_id)
        message = f"New series in the catalog: {title}"
        total = 0
        after: uuid.UUID | None = None
        while True:
            stmt = select(User.id).order_by(User.id).limit(self.NOTIFY_BATCH)
            if after is not None:
                stmt = stmt.where(User.id > after)
            async with self._db.session() as s:
                ids = (await s.scalars(stmt)).all()
            if not ids:
                return total
            total += await self.notify_users(
                ids, NotificationKind.NEW_MANGA, manga_id, title, message, {}
            )
            if len(ids) < self.NOTIFY_BATCH:
                return total
            after = ids[-1]

    async def _notify_in_batches(
        self,
        recipients: Sequence[uuid.UUID],
        kind: NotificationKind,
        manga_id: int,
        title: str,
        message: str,
        data: Mapping[str, Any],
    ) -> int:
        total = 0
        for start in range(0, len(recipients), self.NOTIFY_BATCH):
            chunk = recipients[start : start + self.NOTIFY_BATCH]
            total += await self.notify_users(chunk, kind, manga_id, title, message, data)
        return total

    async def _require_manga(self, manga_id: int) -> None:
        # Checked up front so an unknown series is NotFound even when nobody follows it.
        async with self._db.session() as s:
            await require_manga(s, manga_id)

    @staticmethod
    def _chapter_text(chapter: float) -> str:
        """12.0 → "12", 5.5 → "5.5" (no exponent, unlike ``{:g}`` on large numbers)."""
        return format(Decimal(str(chapter)).normalize(), "f")

    @staticmethod
    def _value_text(value: Any) -> str:
        text = "—" if value is None else str(value)
        return text if len(text) <= 80 else text[:79] + "…"


async def _own(s: AsyncSession, user_id: uuid.UUID, notification_id: int) -> Notification:
    row = None
    if valid_id(notification_id):
        row = await s.scalar(
            select(Notification).where(
                Notification.id == notification_id, Notification.user_id == user_id
            )
        )
    if row is None:
        raise NotFound("notification not found", details={"notification_id": notification_id})
    return row


def _check(kind: NotificationKind | str, title: str) -> NotificationKind:
    try:
        checked = NotificationKind(kind)
    except ValueError as exc:
        raise ValidationFailed(
            "unknown notification kind", details=[{"field": "kind", "message": str(exc)}]
        ) from exc
    if not 1 <= len(title) <= MAX_TITLE_LENGTH:
        raise ValidationFailed(
            "invalid title",
            details=[{"field": "title", "message": f"1..{MAX_TITLE_LENGTH} characters"}],
        )
    return checked


def _event(row: Notification) -> dict[str, Any]:
    public = NotificationPublic.model_validate(row).model_dump(mode="json")
    return {"type": "notification", "user_id": str(row.user_id), **public}
