"""GET /api/chat/{manga_id}/messages: a room's history, newest first.

Page backwards by passing the answer's ``next_before`` as ``before``; it is null once
the oldest message has been returned.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from mangahub.domain.schemas import ChatMessagePublic
from mangahub.http.deps import CurrentUser, RuntimeDep
from mangahub.services.chat import MAX_HISTORY, RECENT_DEFAULT

router = APIRouter(
    tags=["chat"], responses={401: {"description": "Missing or invalid access token"}}
)


class ChatHistory(BaseModel):
    room_id: int
    data: list[ChatMessagePublic]
    limit: int
    before: int | None
    next_before: int | None


@router.get("/{manga_id}/messages", responses={404: {"description": "Unknown manga"}})
async def chat_history(
    manga_id: int,
    _: CurrentUser,
    runtime: RuntimeDep,
    before: Annotated[
        int | None, Query(ge=1, description="Only messages with an id below this one.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = RECENT_DEFAULT,
) -> ChatHistory:
    messages = await runtime.chat.history(manga_id, before, limit)
    # A full page may have older messages behind it; a short one reached the start.
    next_before = messages[-1].id if len(messages) == limit else None
    return ChatHistory(
        room_id=manga_id, data=messages, limit=limit, before=before, next_before=next_before
    )
