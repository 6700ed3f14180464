"""The catalog over HTTP: /api/manga (list, search, advanced search, details, admin
create/update/delete), /api/manga/{id}/chapters, /api/genres, /api/formats and
/api/statuses. Reading the catalog
needs no account; changing it needs the admin role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, BeforeValidator, TypeAdapter

from mangahub.app import Runtime
from mangahub.domain.enums import MangaStatus, SortBy
from mangahub.domain.schemas import (
    MAX_YEAR,
    MIN_YEAR,
    ChapterPublic,
    FederatedResults,
    GenrePublic,
    MangaCreate,
    MangaDetails,
    MangaSummary,
    MangaUpdate,
    Page,
)
from mangahub.http.deps import (
    AdminUser,
    OptionalUser,
    PageParams,
    Pagination,
    RuntimeDep,
    client_address,
)
from mangahub.http.responses import JSONBytes
from mangahub.services.catalog import effective_order, split_genres
from mangahub.services.catalog.params import parse_formats

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
    formats: list[str] = []
    year: int | None = None


class SearchPage(Page[MangaSummary]):
    filters: AppliedFilters


@router.get("/manga", response_model=Page[MangaSummary])
# The original clients search at /manga/search; same handler, same answer.
@router.get("/manga/search", response_model=Page[MangaSummary])
async def list_manga(
    runtime: RuntimeDep,
    paging: PageParams,
    q: SearchText = None,
    genre: GenreFilter = None,
    status: StatusFilter = None,
) -> Response:
    """Browse or search the catalog: best matches first with `q`, else most popular."""
    return JSONBytes(await list_page(runtime, paging, q, genre, status))


async def list_page(
    runtime: Runtime,
    paging: Pagination,
    q: str | None,
    genre: str | None,
    status: MangaStatus | None,
) -> bytes:
    """The JSON of one page of :func:`list_manga` (cached; see ``catalog_reads``)."""

    async def load() -> bytes:
        items, total = await runtime.catalog.list_manga(
            q, genre, status, paging.page, paging.page_size
        )
        return _summaries_json(paging.page_of(items, total))

    key = ("list", q, genre, status, paging.page, paging.page_size)
    return await runtime.catalog_reads.page(key, load)


@router.get("/manga/advanced-search", response_model=SearchPage)
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
    format: Annotated[
        str | None,
        Query(max_length=200, description="Comma list of formats (novels only when named)."),
    ] = None,
    year: Annotated[int | None, Query(ge=MIN_YEAR, le=MAX_YEAR, description="Start year.")] = None,
) -> Response:
    """Search with several genres and a sort order. `sort_by` defaults to relevance
    with `q`, else popularity; the order to descending, except for title."""
    search = AdvancedSearch(q, genres, status, sort_by, order, format, year)
    return JSONBytes(await advanced_search_page(runtime, paging, search))


@dataclass(frozen=True, slots=True)
class AdvancedSearch:
    """The parameters of :func:`advanced_search` but paging, as validated."""

    q: str | None = None
    genres: str | None = None
    status: MangaStatus | None = None
    sort_by: SortBy | None = None
    order: Literal["asc", "desc"] | None = None
    format: str | None = None
    year: int | None = None


async def advanced_search_page(
    runtime: Runtime, paging: Pagination, search: AdvancedSearch
) -> bytes:
    """The JSON of one page of :func:`advanced_search` (cached; see ``catalog_reads``)."""
    q = search.q

    async def load() -> bytes:
        items, total = await runtime.catalog.advanced_search(
            q,
            search.genres,
            search.status,
            search.sort_by,
            search.order,
            paging.page,
            paging.page_size,
            formats=search.format,
            year=search.year,
        )
        has_query = q is not None and bool(q.strip())
        key, direction = effective_order(search.sort_by, search.order, has_query)
        filters = AppliedFilters(
            q=q if has_query else None,
            genres=split_genres(search.genres),
            status=search.status,
            sort_by=key,
            order="asc" if direction == "asc" else "desc",
            formats=[f.value for f in parse_formats(search.format)],
            year=search.year,
        )
        page = SearchPage(
            data=items, page=paging.page, page_size=paging.page_size, total=total, filters=filters
        )
        return SearchPage.__pydantic_serializer__.to_json(page)

    return await runtime.catalog_reads.page(("advanced", search, paging), load)


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


@router.get("/manga/{manga_id}", responses=_UNKNOWN_MANGA, response_model=MangaDetails)
async def get_manga(manga_id: int, runtime: RuntimeDep) -> Response:
    return JSONBytes(await runtime.catalog_reads.series(manga_id, "json", details_json))


def details_json(details: MangaDetails) -> bytes:
    """A series as ``GET /api/manga/{id}`` answers it (also rendered at start-up)."""
    return MangaDetails.__pydantic_serializer__.to_json(details)


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


@router.get("/genres", response_model=list[GenrePublic])
async def list_genres(runtime: RuntimeDep) -> Response:
    async def load() -> bytes:
        return _genres_json.dump_json(await runtime.catalog.list_genres())

    return JSONBytes(await runtime.catalog_reads.page(("genres",), load))


_genres_json = TypeAdapter(list[GenrePublic])
_summary_page = TypeAdapter(Page[MangaSummary])


def _summaries_json(page: Page[MangaSummary]) -> bytes:
    return _summary_page.dump_json(page)


@router.get("/formats")
async def list_formats(runtime: RuntimeDep) -> list[str]:
    """Every format a series can have (the `format` filter of advanced search)."""
    return runtime.catalog.list_formats()


@router.get("/statuses")
async def list_statuses(runtime: RuntimeDep) -> list[str]:
    """Every publication status (the `status` filter)."""
    return runtime.catalog.list_statuses()
