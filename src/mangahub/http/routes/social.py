"""Ratings and comments: PUT /api/manga/{id}/rating, GET, POST /api/manga/{id}/comments,
DELETE /api/comments/{id}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from mangahub.domain.schemas import CommentIn, CommentPublic, Page, RatingIn, RatingPublic
from mangahub.http.deps import CurrentUser, PageParams, RuntimeDep

router = APIRouter(
    tags=["social"], responses={401: {"description": "Missing or invalid access token"}}
)

_UNKNOWN_MANGA: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown manga"}}


@router.put("/manga/{manga_id}/rating", responses=_UNKNOWN_MANGA)
async def rate_manga(
    manga_id: int, body: RatingIn, principal: CurrentUser, runtime: RuntimeDep
) -> RatingPublic:
    """Set my score (1–10) on my entry for the series, listing it if needed."""
    return await runtime.reading_list.rate(principal.user_id, manga_id, body.score)


@router.get("/manga/{manga_id}/comments", responses=_UNKNOWN_MANGA)
async def list_comments(
    manga_id: int, _: CurrentUser, runtime: RuntimeDep, paging: PageParams
) -> Page[CommentPublic]:
    """Comments on a series, newest first."""
    comments, total = await runtime.social.list_comments(manga_id, paging.page, paging.page_size)
    return paging.page_of(comments, total)


@router.post(
    "/manga/{manga_id}/comments", status_code=status.HTTP_201_CREATED, responses=_UNKNOWN_MANGA
)
async def create_comment(
    manga_id: int, body: CommentIn, principal: CurrentUser, runtime: RuntimeDep
) -> CommentPublic:
    return await runtime.social.create_comment(principal.user_id, manga_id, body.content)


@router.delete(
    "/comments/{comment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        403: {"description": "Neither the author nor an admin"},
        404: {"description": "Unknown comment"},
    },
)
async def delete_comment(comment_id: int, principal: CurrentUser, runtime: RuntimeDep) -> Response:
    await runtime.social.delete_comment(principal, comment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
