"""The catalog over HTTP: /api/manga (list, search, advanced search, details, admin
create/update/delete), /api/manga/{id}/chapters and /api/genres. Reading the catalog
needs no account; changing it needs the admin role."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, BeforeValidator

from mangahub.domain.enums import MangaStatus, SortBy
from mangahub.domain.schemas import (
    ChapterPublic,
    FederatedResults,
    GenrePublic,
    MangaCreate,
    MangaDetails,
    MangaSummary,
    MangaUpdate,
    Page,
)
from mangahub.http.deps import AdminUser, OptionalUser, PageParams, RuntimeDep, client_address
from mangahub.services.catalog import effective_order, split_genres

router = APIRouter(tags=["manga"])


def _lower(value: object) -> object:
    # Enum-valued filters ignore case ("Ongoing", "DESC"), as the spec asks.
    return value.strip().lower() if isinstance(value, str) else value


SearchText = Annotated[
    str | None,
    Query(max_length=200, description="Words to find in titles, alt titles, authors, genres."),
]
StatusFilter = Annotated[MangaStatus | None, Query(), BeforeValidator(_lower)]
GenreFilter = Annotated[str | None, Query(max_length=100, description="Genre name (any case).")]

_UNKNOWN_MANGA: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown manga"}}
_ADMIN: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid access token"},
    403: {"description": "Admin role required"},
}


class AppliedFilters(BaseModel):
    """The filters and the order a search really applied (defaults filled in)."""

    q: str | None
    genres: list[str]
    status: MangaStatus | None
    sort_by: str
    order: Literal["asc", "desc"]


class SearchPage(Page[MangaSummary]):
    filters: AppliedFilters


@router.get("/manga")
# The original clients search at /manga/search; same handler, same answer.
@router.get("/manga/search")
async def list_manga(
    runtime: RuntimeDep,
    paging: PageParams,
    q: SearchText = None,
    genre: GenreFilter = None,
    status: StatusFilter = None,
) -> Page[MangaSummary]:
    """Browse or search the catalog: best matches first with `q`, else most popular."""
    items, total = await runtime.catalog.list_manga(q, genre, status, paging.page, paging.page_size)
    return paging.page_of(items, total)


@router.get("/manga/advanced-search")
async def advanced_search(
    runtime: RuntimeDep,
    paging: PageParams,
    q: SearchText = None,
    genres: Annotated[
        str | None, Query(max_length=500, description="Comma list; a series must have all.")
    ] = None,
    status: StatusFilter = None,
    sort_by: Annotated[SortBy | None, Query(), BeforeValidator(_lower)] = None,
    order: Annotated[Literal["asc", "desc"] | None, Query(), BeforeValidator(_lower)] = None,
) -> SearchPage:
    """Search with several genres and a sort order. `sort_by` defaults to relevance
    with `q`, else popularity; the order to descending, except for title."""
    items, total = await runtime.catalog.advanced_search(
        q, genres, status, sort_by, order, paging.page, paging.page_size
    )
    has_query = q is not None and bool(q.strip())
    key, direction = effective_order(sort_by, order, has_query)
    filters = AppliedFilters(
        q=q if has_query else None,
        genres=split_genres(genres),
        status=status,
        sort_by=key,
        order="asc" if direction == "asc" else "desc",
    )
    return SearchPage(
        data=items, page=paging.page, page_size=paging.page_size, total=total, filters=filters
    )


# Before /manga/{manga_id}, which would otherwise take "federated" for an id.
@router.get(
    "/manga/federated",
    responses={429: {"description": "Too many anonymous source searches; see Retry-After"}},
)
async def federated_search(
    runtime: RuntimeDep,
    request: Request,
    caller: OptionalUser,
    q: Annotated[str, Query(min_length=1, max_length=200, description="Title words.")],
    limit: Annotated[int, Query(ge=1, le=100, description="Results per source.")] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    sources: Annotated[
        str | None,
        Query(max_length=100, description="Comma list: local, mangadex, anilist (default all)."),
    ] = None,
) -> FederatedResults:
    """The local catalog first, then MangaDex and AniList (when enabled), each series
    once; `sources` in the answer says how each source fared. MangaDex data is
    credited to MangaDex and its scanlation groups."""
    names = [name.strip() for name in (sources or "").split(",") if name.strip()]
    anonymous = client_address(request) if caller is None else None
    return await runtime.federated.search(
        q, limit=limit, offset=offset, sources=names, anonymous_from=anonymous
    )


@router.get("/manga/{manga_id}", responses=_UNKNOWN_MANGA)
async def get_manga(manga_id: int, runtime: RuntimeDep) -> MangaDetails:
    return await runtime.catalog.get_manga(manga_id)


@router.post(
    "/manga",
    status_code=status.HTTP_201_CREATED,
    responses={**_ADMIN, 409: {"description": "Source id already used by another series"}},
)
async def create_manga(body: MangaCreate, _: AdminUser, runtime: RuntimeDep) -> MangaDetails:
    return await runtime.catalog.create_manga(body)


@router.patch("/manga/{manga_id}", responses={**_ADMIN, **_UNKNOWN_MANGA})
async def update_manga(
    manga_id: int, body: MangaUpdate, _: AdminUser, runtime: RuntimeDep
) -> MangaDetails:
    """Change only the fields sent; `null` clears an optional field."""
    return await runtime.catalog.update_manga(manga_id, body)


@router.delete(
    "/manga/{manga_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_ADMIN, **_UNKNOWN_MANGA},
)
async def delete_manga(manga_id: int, _: AdminUser, runtime: RuntimeDep) -> Response:
    await runtime.catalog.delete_manga(manga_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/manga/{manga_id}/chapters", responses=_UNKNOWN_MANGA)
async def list_chapters(
    manga_id: int, runtime: RuntimeDep, paging: PageParams
) -> Page[ChapterPublic]:
    """Chapters in reading order (5, 5.5, 6…)."""
    items, total = await runtime.catalog.list_chapters(manga_id, paging.page, paging.page_size)
    return paging.page_of(items, total)


@router.get("/genres")
async def list_genres(runtime: RuntimeDep) -> list[GenrePublic]:
    return await runtime.catalog.list_genres()
