"""GET /api/notifications, POST /api/notifications/{id}/read and /read-all: the
caller's own notifications."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from mangahub.domain.schemas import NotificationPublic, Page
from mangahub.http.deps import CurrentUser, PageParams, RuntimeDep

router = APIRouter(
    tags=["notifications"], responses={401: {"description": "Missing or invalid access token"}}
)


class ReadAllOut(BaseModel):
    updated: int


@router.get("")
async def list_notifications(
    principal: CurrentUser,
    runtime: RuntimeDep,
    paging: PageParams,
    unread: Annotated[bool, Query(description="Only unread notifications.")] = False,
) -> Page[NotificationPublic]:
    """My notifications, newest first."""
    items, total = await runtime.notifications.list(
        principal.user_id, unread, paging.page, paging.page_size
    )
    return paging.page_of(items, total)


@router.post("/read-all")
async def mark_all_read(principal: CurrentUser, runtime: RuntimeDep) -> ReadAllOut:
    return ReadAllOut(updated=await runtime.notifications.mark_all_read(principal.user_id))


@router.post("/{notification_id}/read", responses={404: {"description": "Unknown notification"}})
async def mark_read(
    notification_id: int, principal: CurrentUser, runtime: RuntimeDep
) -> NotificationPublic:
    return await runtime.notifications.mark_read(principal.user_id, notification_id)
