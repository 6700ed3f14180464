"""Comments on a series. (A reader's score lives on their reading entry: see
``services.reading_list``.)"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mangahub.domain.errors import Forbidden, NotFound
from mangahub.domain.schemas import CommentPublic
from mangahub.security.tokens import Principal
from mangahub.services._common import (
    fetch_page,
    require_manga,
    require_username,
    valid_id,
    validate_text,
)
from mangahub.storage.database import Database
from mangahub.storage.models import Comment, User


class SocialService:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- comments -------------------------------------------------------------------

    async def list_comments(
        self, manga_id: int, page: int, page_size: int
    ) -> tuple[list[CommentPublic], int]:
        """A series' comments, newest first; NotFound for an unknown manga."""
        stmt = (
            _comment_columns()
            .where(Comment.manga_id == manga_id)
            .order_by(Comment.created_at.desc(), Comment.id.desc())
        )
        async with self._db.session() as s:
            await require_manga(s, manga_id)
            rows, total = await fetch_page(s, stmt, page, page_size)
        return [CommentPublic.model_validate(r) for r in rows], total

    async def create_comment(
        self, user_id: uuid.UUID, manga_id: int, content: str
    ) -> CommentPublic:
        """Post a comment (1–2000 characters, stored verbatim; renderers escape it)."""
        content = validate_text(content, "content")
        async with self._db.session() as s:
            await require_manga(s, manga_id)
            username = await require_username(s, user_id)
            comment = Comment(user_id=user_id, manga_id=manga_id, content=content)
            s.add(comment)
            await s.flush()
        return CommentPublic(
            id=comment.id,
            manga_id=manga_id,
            user_id=user_id,
            username=username,
            content=content,
            created_at=comment.created_at,
        )

    async def delete_comment(self, principal: Principal, comment_id: int) -> None:
        """Delete a comment: its author or an admin may; anyone else gets Forbidden."""
        async with self._db.session() as s:
            author = await _comment_author(s, comment_id)
            if author != principal.user_id and not principal.is_admin:
                raise Forbidden("only the author or an admin may delete this comment")
            await s.execute(delete(Comment).where(Comment.id == comment_id))


def _comment_columns() -> Select[int, int, uuid.UUID, str, str, datetime]:
    """The public comment shape, with the author's name joined in (and nothing else of
    the user row, which holds the password hash)."""
    return select(
        Comment.id,
        Comment.manga_id,
        Comment.user_id,
        User.username,
        Comment.content,
        Comment.created_at,
    ).join(User, User.id == Comment.user_id)


async def _comment_author(s: AsyncSession, comment_id: int) -> uuid.UUID:
    author = None
    if valid_id(comment_id):
        author = await s.scalar(select(Comment.user_id).where(Comment.id == comment_id))
    if author is None:
        raise NotFound("comment not found", details={"comment_id": comment_id})
    return author
