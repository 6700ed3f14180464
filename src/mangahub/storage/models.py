"""The schema of SPEC "Domain". Constraints live here so that every door gets them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mangahub.domain.enums import MangaFormat, MangaStatus, NotificationKind, ReadingStatus, Role
from mangahub.storage.types import JSONType, UTCDateTime, utcnow

# Deterministic constraint names, so migrations can refer to them on both dialects.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Chapter numbers are decimals ("5.5"); floats carry them exactly for any real chapter.
Chapter = Numeric(10, 2, asdecimal=False)


def _in(column: str, values: type[Any]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("role", Role), name="role"),
        # Usernames are unique regardless of case; login looks them up by lower().
        Index("uq_users_username_lower", func.lower(text("username")), unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(50), unique=True, nullable=False)
    # Stored lower-cased so uniqueness and login by email ignore case.
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[str] = mapped_column(String(10), default=Role.USER.value, nullable=False)
    # Per-user counter behind progress versions: every progress write takes the next
    # value, so versions are monotonic per row and "changed since N" is one query.
    progress_seq: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)


class Genre(Base):
    __tablename__ = "genres"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True, nullable=False)
    slug: Mapped[str] = mapped_column(String(60), unique=True, nullable=False)


class MangaGenre(Base):
    __tablename__ = "manga_genres"

    manga_id: Mapped[int] = mapped_column(
        ForeignKey("manga.id", ondelete="CASCADE"), primary_key=True
    )
    genre_id: Mapped[int] = mapped_column(
        ForeignKey("genres.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Manga(TimestampMixin, Base):
    __tablename__ = "manga"
    __table_args__ = (
        CheckConstraint(_in("status", MangaStatus), name="status"),
        CheckConstraint(_in("format", MangaFormat), name="format"),
        CheckConstraint("total_chapters IS NULL OR total_chapters >= 0", name="total_chapters"),
        CheckConstraint("volumes IS NULL OR volumes >= 0", name="volumes"),
        Index("ix_manga_popularity", "popularity"),
        Index("ix_manga_average_rating", "average_rating"),
        Index("ix_manga_title", "title"),
        Index("ix_manga_updated_at", "updated_at"),
        Index("ix_manga_total_chapters", "total_chapters"),
        Index("ix_manga_status", "status"),
        Index("ix_manga_last_chapter_check", "last_chapter_check_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    alt_titles: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    authors: Mapped[list[str]] = mapped_column(JSONType, default=list, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    total_chapters: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    cover_url: Mapped[str | None] = mapped_column(String(1000))
    year: Mapped[int | None] = mapped_column(Integer)
    mangadex_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    anilist_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    mal_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    format: Mapped[str] = mapped_column(
        String(20), default=MangaFormat.MANGA.value, server_default="manga", nullable=False
    )
    volumes: Mapped[int | None] = mapped_column(Integer)
    # The strongest source tags ("Revenge", "Time Skip"), next to the genres.
    themes: Mapped[list[str]] = mapped_column(
        JSONType, default=list, server_default="[]", nullable=False
    )
    # ``[{"name": ..., "role": "Story & Art"}]`` where a source credits roles.
    author_roles: Mapped[list[dict[str, str]]] = mapped_column(
        JSONType, default=list, server_default="[]", nullable=False
    )
    average_rating: Mapped[float | None] = mapped_column(Float)
    rating_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    popularity: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # Title, alternative titles, authors and genre names in one string: the text
    # that full-text search indexes (FTS5 on SQLite, tsvector on PostgreSQL).
    search_text: Mapped[str] = mapped_column(Text, default="", nullable=False)
    # Source sync tracking.
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_chapter_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    genres: Mapped[list[Genre]] = relationship(
        secondary="manga_genres", lazy="selectin", order_by="Genre.name"
    )


class CatalogEdit(Base):
    """A field of a series an admin changed: catalog upgrades leave it alone."""

    __tablename__ = "catalog_edits"

    manga_id: Mapped[int] = mapped_column(
        ForeignKey("manga.id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[str] = mapped_column(String(30), primary_key=True)
    edited_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class CatalogTombstone(Base):
    """A source id of a series an admin deleted: imports never bring it back."""

    __tablename__ = "catalog_tombstones"

    source: Mapped[str] = mapped_column(String(10), primary_key=True)  # mangadex|anilist|mal
    source_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class ChapterRow(Base):
    __tablename__ = "chapters"
    __table_args__ = (
        UniqueConstraint("manga_id", "number", "language", name="uq_chapters_manga_number_lang"),
        CheckConstraint("number >= 0", name="number"),
        Index("ix_chapters_manga_number", "manga_id", "number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    manga_id: Mapped[int] = mapped_column(
        ForeignKey("manga.id", ondelete="CASCADE"), nullable=False
    )
    number: Mapped[float] = mapped_column(Chapter, nullable=False)
    title: Mapped[str | None] = mapped_column(String(500))
    volume: Mapped[str | None] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(10), default="en", nullable=False)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    mangadex_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    scanlation_group: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class ReadingEntry(Base):
    """The reader's list: one row per user x series. "Library", "progress" and the
    user's rating are views of this one row, so their status can never drift apart."""

    __tablename__ = "reading_entries"
    __table_args__ = (
        CheckConstraint(_in("status", ReadingStatus), name="status"),
        CheckConstraint("chapter >= 0", name="chapter"),
        CheckConstraint("volume >= 0", name="volume"),
        CheckConstraint("score IS NULL OR score BETWEEN 1 AND 10", name="score"),
        CheckConstraint("rereads >= 0", name="rereads"),
        # TCP catch-up ("changed since version N"). The list view's sorts and filter
        # read one user's rows through the primary key: an index per sort would be
        # rewritten by every progress write (migration 0007).
        Index("ix_reading_entries_user_version", "user_id", "version"),
        # New-chapter recipients and the series' average score.
        Index("ix_reading_entries_manga", "manga_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    manga_id: Mapped[int] = mapped_column(
        ForeignKey("manga.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    chapter: Mapped[float] = mapped_column(Chapter, default=0, nullable=False)
    volume: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    score: Mapped[int | None] = mapped_column(Integer)
    started_on: Mapped[date | None] = mapped_column(Date)
    finished_on: Mapped[date | None] = mapped_column(Date)
    rereads: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    rereading: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    notes: Mapped[str] = mapped_column(Text, default="", nullable=False)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    device: Mapped[str | None] = mapped_column(String(100))
    # From users.progress_seq: unique per user, grows with every write of any entry.
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)

    manga: Mapped[Manga] = relationship(lazy="joined")


class Comment(Base):
    __tablename__ = "comments"
    __table_args__ = (
        CheckConstraint("length(content) BETWEEN 1 AND 2000", name="content"),
        Index("ix_comments_manga_created", "manga_id", "created_at"),
        Index("ix_comments_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    manga_id: Mapped[int] = mapped_column(
        ForeignKey("manga.id", ondelete="CASCADE"), nullable=False
    )
    content: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    user: Mapped[User] = relationship(lazy="joined")


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (
        CheckConstraint("length(content) BETWEEN 1 AND 2000", name="content"),
        Index("ix_chat_room_id", "room_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("manga.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    content: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    user: Mapped[User] = relationship(lazy="joined")


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(_in("kind", NotificationKind), name="kind"),
        Index("ix_notifications_user_created", "user_id", "created_at"),
        Index("ix_notifications_user_unread", "user_id", "read"),
        Index("ix_notifications_user_undelivered", "user_id", "delivered"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    manga_id: Mapped[int | None] = mapped_column(ForeignKey("manga.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, nullable=False)
    read: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    delivered: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    __table_args__ = (
        Index("ix_refresh_tokens_family", "family_id"),
        Index("ix_refresh_tokens_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # SHA-256 of the opaque token: a leaked table does not leak usable tokens.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Set when the token was exchanged for a new one; presenting it again is reuse.
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class SyncState(Base):
    __tablename__ = "sync_state"

    sync_type: Mapped[str] = mapped_column(String(50), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="idle", nullable=False)
    cursor: Mapped[str | None] = mapped_column(String(500))
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONType, default=dict, nullable=False
    )
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
