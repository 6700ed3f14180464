"""GET, POST /api/library and PATCH, DELETE /api/library/{manga_id}: the caller's own
library. Identity comes from the token only."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from mangahub.domain.schemas import LibraryAdd, LibraryEntryPublic, LibraryUpdate, Page
from mangahub.http.deps import CurrentUser, PageParams, RuntimeDep

router = APIRouter(
    tags=["library"], responses={401: {"description": "Missing or invalid access token"}}
)


@router.get("")
async def list_library(
    principal: CurrentUser, runtime: RuntimeDep, paging: PageParams
) -> Page[LibraryEntryPublic]:
    """My library, most recently added first."""
    entries, total = await runtime.library.list(principal.user_id, paging.page, paging.page_size)
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
    body: LibraryAdd, principal: CurrentUser, runtime: RuntimeDep
) -> LibraryEntryPublic:
    return await runtime.library.add(principal.user_id, body.manga_id, body.status)


@router.patch("/{manga_id}", responses={404: {"description": "Not in the library"}})
async def update_library_entry(
    manga_id: int, body: LibraryUpdate, principal: CurrentUser, runtime: RuntimeDep
) -> LibraryEntryPublic:
    return await runtime.library.update(principal.user_id, manga_id, body.status)


@router.delete(
    "/{manga_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "Not in the library"}},
)
async def remove_from_library(
    manga_id: int, principal: CurrentUser, runtime: RuntimeDep
) -> Response:
    await runtime.library.remove(principal.user_id, manga_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
