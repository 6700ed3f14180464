"""Chat rooms, one per series (room id = manga id).

A message is stored (concurrent posts share a transaction: ``chat_store``), then
published on ``chat:<room_id>`` as ``{"type": "chat", <ChatMessagePublic fields>}``,
so every process with members in the room relays it and history never misses a
message that was broadcast.
Message ids grow with time, so they are the history cursor (``before``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Coroutine
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from mangahub.bus import EventBus
from mangahub.domain.errors import ValidationFailed
from mangahub.domain.schemas import MAX_TEXT_LENGTH, ChatMessagePublic
from mangahub.services._common import (
    MAX_ROW_ID,
    manga_not_found,
    publish_after_commit,
    require_manga,
    valid_id,
    validate_text,
)
from mangahub.services.chat_store import MessageStore, NewMessage, StoredMessage
from mangahub.storage.database import Database
from mangahub.storage.models import ChatMessage, User
from mangahub.storage.types import utcnow

MAX_HISTORY = 100
RECENT_DEFAULT = 50


class ChatService:
    def __init__(self, db: Database, bus: EventBus) -> None:
        self._db = db
        self._bus = bus
        self._store = MessageStore(db)

    async def post(self, user_id: uuid.UUID, room_id: int, content: str) -> ChatMessagePublic:
        """Store a message in a room and broadcast it to the room's members."""
        return await self.submit(user_id, room_id, content)

    def submit(
        self, user_id: uuid.UUID, room_id: int, content: str
    ) -> Coroutine[Any, Any, ChatMessagePublic]:
        """:meth:`post` in two steps, for a reader that goes on reading meanwhile: the
        content is checked (``ValidationFailed``) and the message queued for storing
        now, so one connection's messages are stored in the order submitted; the
        returned coroutine waits for the commit, then publishes."""
        if len(content) > MAX_TEXT_LENGTH:
            # The WebSocket error carries only the message: it must say the limit.
            raise ValidationFailed(
                f"a message is at most {MAX_TEXT_LENGTH} characters",
                details=[{"field": "content", "message": f"{len(content)} characters"}],
            )
        content = validate_text(content, "content")
        if not valid_id(room_id):
            raise manga_not_found(room_id)
        created_at = utcnow()
        stored = self._store.submit(NewMessage(user_id, room_id, content, created_at))
        return self._publish(stored, user_id, room_id, content, created_at)

    async def _publish(
        self,
        stored: Awaitable[StoredMessage],
        user_id: uuid.UUID,
        room_id: int,
        content: str,
        created_at: datetime,
    ) -> ChatMessagePublic:
        row = await stored
        message = ChatMessagePublic(
            id=row.id,
            room_id=room_id,
            user_id=user_id,
            username=row.username,
            content=content,
            timestamp=created_at,
        )
        event = {"type": "chat", **message.model_dump(mode="json")}
        await publish_after_commit(self._bus, f"chat:{room_id}", event)
        return message

    async def history(
        self, room_id: int, before: int | None = None, limit: int = RECENT_DEFAULT
    ) -> list[ChatMessagePublic]:
        """Up to ``limit`` messages older than message id ``before`` (all when None),
        newest first. NotFound for an unknown manga."""
        _check_limit(limit)
        async with self._db.session() as s:
            return await _newest(s, room_id, before, limit)

    async def recent(self, room_id: int, n: int = RECENT_DEFAULT) -> list[ChatMessagePublic]:
        """The last ``n`` messages, oldest first (what a joiner sees scroll in)."""
        _check_limit(n)
        async with self._db.session() as s:
            newest = await _newest(s, room_id, None, n)
        return newest[::-1]


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_HISTORY:
        raise ValidationFailed(
            "invalid limit", details=[{"field": "limit", "message": f"must be 1..{MAX_HISTORY}"}]
        )


async def _newest(
    s: AsyncSession, room_id: int, before: int | None, limit: int
) -> list[ChatMessagePublic]:
    await require_manga(s, room_id)
    stmt = _message_columns().where(ChatMessage.room_id == room_id)
    # A cursor beyond any possible id means "from the newest", like no cursor.
    if before is not None and before <= MAX_ROW_ID:
        stmt = stmt.where(ChatMessage.id < before)
    rows = await s.execute(stmt.order_by(ChatMessage.id.desc()).limit(limit))
    return [ChatMessagePublic.model_validate(r) for r in rows]


def _message_columns() -> Select[int, int, uuid.UUID, str, str, datetime]:
    return select(
        ChatMessage.id,
        ChatMessage.room_id,
        ChatMessage.user_id,
        User.username,
        ChatMessage.content,
        ChatMessage.created_at.label("timestamp"),
    ).join(User, User.id == ChatMessage.user_id)
