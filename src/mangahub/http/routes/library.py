"""GET, POST /api/library and GET, PATCH, DELETE /api/library/{manga_id}: the caller's
own list. Identity comes from the token only; every write is pushed to the caller's
other sessions (TCP, WebSocket)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import BeforeValidator

from mangahub.domain.enums import EntrySort, ReadingStatus
from mangahub.domain.schemas import EntryAdd, EntryPublic, EntryUpdate, Page
from mangahub.http.deps import CurrentUser, PageParams, RuntimeDep
from mangahub.services.entry_writes import MAX_DEVICE_LENGTH

router = APIRouter(
    tags=["library"], responses={401: {"description": "Missing or invalid access token"}}
)

HTTP_DEVICE = "http"
DeviceHeader = Annotated[
    str | None,
    Header(
        alias="X-Device",
        max_length=MAX_DEVICE_LENGTH,
        description="Name of the device (default: http).",
    ),
]
# Query values are strings; enum-valued filters ignore case, as SPEC asks.
_ANY_CASE = BeforeValidator(str.lower)
_NOT_LISTED: dict[int | str, dict[str, Any]] = {404: {"description": "Not in the library"}}


@router.get("")
async def list_library(
    principal: CurrentUser,
    runtime: RuntimeDep,
    paging: PageParams,
    status_: Annotated[
        ReadingStatus | None,
        Query(alias="status", description="Only this status (any case)."),
        _ANY_CASE,
    ] = None,
    q: Annotated[str | None, Query(max_length=200, description="Title contains.")] = None,
    sort_by: Annotated[EntrySort, _ANY_CASE] = EntrySort.UPDATED,
    order: Annotated[Literal["asc", "desc"] | None, _ANY_CASE] = None,
) -> Page[EntryPublic]:
    """My list, each entry with its series; by default most recently updated first."""
    entries, total = await runtime.reading_list.list(
        principal.user_id,
        status=status_,
        q=q,
        sort_by=sort_by,
        descending=None if order is None else order == "desc",
        page=paging.page,
        page_size=paging.page_size,
    )
    return paging.page_of(entries, total)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"description": "Unknown manga"},
        409: {"description": "Already in the library"},
    },
)
async def add_to_library(
    body: EntryAdd, principal: CurrentUser, runtime: RuntimeDep, x_device: DeviceHeader = None
) -> EntryPublic:
    """List a series (default status plan_to_read); any entry field may be given."""
    return await runtime.reading_list.add(
        principal.user_id, body.manga_id, body.changes(), device=x_device or HTTP_DEVICE
    )


@router.get("/{manga_id}", responses=_NOT_LISTED)
async def get_library_entry(
    manga_id: int, principal: CurrentUser, runtime: RuntimeDep
) -> EntryPublic:
    return await runtime.reading_list.get(principal.user_id, manga_id)


@router.patch("/{manga_id}", responses=_NOT_LISTED)
async def update_library_entry(
    manga_id: int,
    body: EntryUpdate,
    principal: CurrentUser,
    runtime: RuntimeDep,
    x_device: DeviceHeader = None,
) -> EntryPublic:
    """Change any fields; the others stay."""
    return await runtime.reading_list.update(
        principal.user_id, manga_id, body.changes(), device=x_device or HTTP_DEVICE
    )


@router.delete("/{manga_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_LISTED)
async def remove_from_library(
    manga_id: int, principal: CurrentUser, runtime: RuntimeDep
) -> Response:
    """Remove the entry, its progress and its score."""
    await runtime.reading_list.remove(principal.user_id, manga_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
