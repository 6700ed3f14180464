"""PUT, GET /api/users/progress and GET /api/users/progress/{manga_id}: the progress
view of the caller's reading entries. A PUT is pushed to the caller's other sessions
(TCP, WebSocket)."""

from __future__ import annotations

from fastapi import APIRouter

from mangahub.domain.schemas import EntryPublic, Page, ProgressIn
from mangahub.http.deps import CurrentUser, PageParams, RuntimeDep
from mangahub.http.routes.library import HTTP_DEVICE, DeviceHeader

router = APIRouter(
    tags=["progress"], responses={401: {"description": "Missing or invalid access token"}}
)


@router.put(
    "",
    responses={
        404: {"description": "Unknown manga"},
        422: {"description": "Invalid body, or chapter beyond the manga's total"},
    },
)
async def update_progress(
    body: ProgressIn, principal: CurrentUser, runtime: RuntimeDep, x_device: DeviceHeader = None
) -> EntryPublic:
    """Write my position; a series not in my list is added as reading."""
    return await runtime.reading_list.set_progress(
        principal.user_id,
        body.manga_id,
        body.chapter,
        volume=body.volume,
        status=body.status,
        device=x_device or HTTP_DEVICE,
    )


@router.get("")
async def list_progress(
    principal: CurrentUser, runtime: RuntimeDep, paging: PageParams
) -> Page[EntryPublic]:
    """My entries, most recently written first."""
    items, total = await runtime.reading_list.list(
        principal.user_id, page=paging.page, page_size=paging.page_size
    )
    return paging.page_of(items, total)


@router.get("/{manga_id}", responses={404: {"description": "Not in the library"}})
async def get_progress(manga_id: int, principal: CurrentUser, runtime: RuntimeDep) -> EntryPublic:
    return await runtime.reading_list.get(principal.user_id, manga_id)
