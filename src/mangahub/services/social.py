"""Ratings and comments on a series.

Ratings are one per (user, manga), upserted; the manga's ``average_rating`` and
``rating_count`` are recomputed in the same transaction, with the manga row locked
first (PostgreSQL) so two concurrent raters cannot each miss the other's score.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mangahub.bus import EventBus
from mangahub.domain.errors import Forbidden, NotFound, ValidationFailed
from mangahub.domain.schemas import CommentPublic, RatingPublic
from mangahub.readmodels.catalog import publish_catalog_changed
from mangahub.security.tokens import Principal
from mangahub.services._common import (
    fetch_page,
    require_manga,
    require_username,
    upsert,
    valid_id,
    validate_text,
)
from mangahub.storage.database import Database
from mangahub.storage.models import Comment, Manga, Rating, User
from mangahub.storage.types import utcnow

MIN_SCORE, MAX_SCORE = 1, 10


class SocialService:
    def __init__(self, db: Database, bus: EventBus | None = None) -> None:
        self._db = db
        self._bus = bus

    # --- ratings --------------------------------------------------------------------

    async def rate(self, user_id: uuid.UUID, manga_id: int, score: int) -> RatingPublic:
        """Set the user's score (1–10) for a series, replacing an earlier one."""
        _check_score(score)
        now = utcnow()
        async with self._db.session() as s:
            await require_manga(s, manga_id, for_update=True)
            row = {
                "user_id": user_id,
                "manga_id": manga_id,
                "score": score,
                "created_at": now,
                "updated_at": now,
            }
            await s.execute(
                upsert(
                    self._db.dialect,
                    Rating,
                    [row],
                    keys=("user_id", "manga_id"),
                    update=("score", "updated_at"),
                )
            )
            await _recompute_average(s, manga_id)
        await publish_catalog_changed(self._bus, manga_id)  # average_rating moved
        return RatingPublic(manga_id=manga_id, score=score, updated_at=now)

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


def _check_score(score: int) -> None:
    # bool is an int in Python; a score of True is a client bug, not a 1.
    if isinstance(score, bool) or not isinstance(score, int) or not MIN_SCORE <= score <= MAX_SCORE:
        raise ValidationFailed(
            "invalid score",
            details=[{"field": "score", "message": f"an integer {MIN_SCORE}..{MAX_SCORE}"}],
        )


async def _recompute_average(s: AsyncSession, manga_id: int) -> None:
    count, average = (
        await s.execute(
            select(func.count(), func.avg(Rating.score)).where(Rating.manga_id == manga_id)
        )
    ).one()
    await s.execute(
        update(Manga)
        .where(Manga.id == manga_id)
        .values(
            average_rating=None if average is None else round(float(average), 2),
            rating_count=count,
            # A new score is not an edit of the series: keep "recently updated" honest.
            updated_at=Manga.updated_at,
        )
        .execution_options(synchronize_session=False)
    )


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
