"""PUT, GET /api/users/progress and GET /api/users/progress/{manga_id}: the caller's
reading progress. A PUT is pushed to the caller's other sessions (TCP, WebSocket)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from mangahub.domain.schemas import Page, ProgressIn, ProgressPublic
from mangahub.http.deps import CurrentUser, PageParams, RuntimeDep
from mangahub.services.progress import MAX_DEVICE_LENGTH

router = APIRouter(
    tags=["progress"], responses={401: {"description": "Missing or invalid access token"}}
)

HTTP_DEVICE = "http"


@router.put(
    "",
    responses={
        404: {"description": "Unknown manga"},
        422: {"description": "Invalid body, or chapter beyond the manga's total"},
    },
)
async def update_progress(
    body: ProgressIn,
    principal: CurrentUser,
    runtime: RuntimeDep,
    x_device: Annotated[
        str | None,
        Header(max_length=MAX_DEVICE_LENGTH, description="Name of the device (default: http)."),
    ] = None,
) -> ProgressPublic:
    return await runtime.progress.update(
        principal.user_id, body.manga_id, body.chapter, body.status, x_device or HTTP_DEVICE
    )


@router.get("")
async def list_progress(
    principal: CurrentUser, runtime: RuntimeDep, paging: PageParams
) -> Page[ProgressPublic]:
    """My progress, most recently written first."""
    items, total = await runtime.progress.list(principal.user_id, paging.page, paging.page_size)
    return paging.page_of(items, total)


@router.get("/{manga_id}", responses={404: {"description": "No progress for this manga"}})
async def get_progress(
    manga_id: int, principal: CurrentUser, runtime: RuntimeDep
) -> ProgressPublic:
    return await runtime.progress.get(principal.user_id, manga_id)
