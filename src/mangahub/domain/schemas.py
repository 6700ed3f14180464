"""Public shapes: what every door (HTTP, TCP, WS, gRPC, CLI) sends and accepts.

Inputs reject unknown-typed values with field-level errors; outputs are built from
storage rows with ``model_validate(row)``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

from mangahub.domain.enums import (
    MangaFormat,
    MangaStatus,
    NotificationKind,
    ReadingStatus,
    Role,
    SourceStatus,
)
from mangahub.domain.text import MULTI_LINE, SINGLE_LINE

T = TypeVar("T")

MAX_PAGE_SIZE = 100
# Start years a series can have (the year filter of searches).
MIN_YEAR, MAX_YEAR = 1800, 2200


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Username = Annotated[
    str, StringConstraints(min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_.-]+$")
]


def _fits_bcrypt(value: str) -> str:
    # bcrypt reads at most 72 bytes; longer input would be silently truncated or refused.
    if len(value.encode()) > 72:
        raise ValueError("must be at most 72 bytes as UTF-8")
    return value


Password = Annotated[
    str, StringConstraints(min_length=8, max_length=72), AfterValidator(_fits_bcrypt)
]
# Free text from users is stored verbatim (HTML included); renderers escape it.
MAX_TEXT_LENGTH = 2000
UserText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TEXT_LENGTH),
    MULTI_LINE,
    AfterValidator(_not_blank),
]
ChapterNumber = Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]
Title = Annotated[
    str,
    StringConstraints(min_length=1, max_length=500, strip_whitespace=True),
    SINGLE_LINE,
]


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Input(BaseModel):
    """Request bodies: unknown fields are ignored, so `user_id` in a body changes nothing."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


# --- users and auth -----------------------------------------------------------------


class UserPublic(Schema):
    id: uuid.UUID
    username: str
    email: str
    role: Role
    created_at: datetime


class RegisterIn(Input):
    username: Username
    email: EmailStr
    password: Password


class LoginIn(Input):
    username: Annotated[str, StringConstraints(min_length=1, max_length=254), SINGLE_LINE] = Field(
        description="Username or email address."
    )
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class RefreshIn(Input):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class TokenPair(Schema):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserPublic


# --- catalog ---------------------------------------------------------------------


class GenrePublic(Schema):
    id: int
    name: str
    slug: str


class MangaSummary(Schema):
    id: int
    slug: str
    title: str
    authors: list[str]
    status: MangaStatus
    format: MangaFormat
    total_chapters: int | None
    cover_url: str | None
    average_rating: float | None
    popularity: int
    genres: list[str]

    @field_validator("genres", mode="before")
    @classmethod
    def _genre_names(cls, value: Any) -> Any:
        return [g if isinstance(g, str) else g.name for g in value]


class AuthorRolePublic(Schema):
    name: str
    role: str


class MangaDetails(MangaSummary):
    alt_titles: list[str]
    themes: list[str] = []
    author_roles: list[AuthorRolePublic] = []
    description: str
    year: int | None
    volumes: int | None
    mangadex_id: str | None
    anilist_id: int | None
    mal_id: int | None
    rating_count: int
    created_at: datetime
    updated_at: datetime


class FederatedManga(Schema):
    """One series in a federated search answer: from the local catalog (``id`` set) or
    only known to an external source (``id`` is None)."""

    id: int | None
    slug: str | None
    title: str
    alt_titles: list[str]
    authors: list[str]
    description: str
    genres: list[str]
    status: MangaStatus
    total_chapters: int | None
    cover_url: str | None
    average_rating: float | None
    year: int | None
    source: str  # "local" | "mangadex" | "anilist"
    mangadex_id: str | None
    anilist_id: int | None


class SourceReport(Schema):
    """How one source fared in a federated search."""

    name: str
    status: SourceStatus
    results: int = 0
    error: str | None = None


class FederatedResults(Schema):
    results: list[FederatedManga]
    total: int
    page: int
    sources: list[SourceReport]


class MangaCreate(Input):
    title: Title
    alt_titles: list[Title] = Field(default_factory=list, max_length=50)
    authors: list[Title] = Field(default_factory=list, max_length=20)
    status: MangaStatus = MangaStatus.ONGOING
    total_chapters: Annotated[int, Field(ge=0, le=100_000)] | None = None
    description: Annotated[str, StringConstraints(max_length=20_000)] = ""
    cover_url: Annotated[str, StringConstraints(max_length=1000), SINGLE_LINE] | None = None
    year: Annotated[int, Field(ge=MIN_YEAR, le=MAX_YEAR)] | None = None
    genre_ids: list[int] = Field(default_factory=list, max_length=50)
    mangadex_id: Annotated[str, StringConstraints(max_length=36), SINGLE_LINE] | None = None
    anilist_id: Annotated[int, Field(ge=1)] | None = None


class MangaUpdate(Input):
    """PATCH body: only the fields present are changed."""

    title: Title | None = None
    alt_titles: list[Title] | None = Field(default=None, max_length=50)
    authors: list[Title] | None = Field(default=None, max_length=20)
    status: MangaStatus | None = None
    total_chapters: Annotated[int, Field(ge=0, le=100_000)] | None = None
    description: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    cover_url: Annotated[str, StringConstraints(max_length=1000), SINGLE_LINE] | None = None
    year: Annotated[int, Field(ge=MIN_YEAR, le=MAX_YEAR)] | None = None
    genre_ids: list[int] | None = Field(default=None, max_length=50)


class ChapterPublic(Schema):
    id: int
    manga_id: int
    number: float
    title: str | None
    volume: str | None
    language: str
    published_at: datetime | None


# --- library, progress, ratings, comments -----------------------------------------


MAX_NOTES_LENGTH = 10_000
Score = Annotated[int, Field(ge=1, le=10, strict=True)]
Volume = Annotated[int, Field(ge=0, le=100_000, strict=True)]
Device = Annotated[str, StringConstraints(max_length=100)]
Notes = Annotated[str, StringConstraints(max_length=MAX_NOTES_LENGTH)]


class EntryPublic(Schema):
    """One reading entry: the reader's list row, their progress and their score. The
    progress view (PUT/GET /api/users/progress, TCP, WS) is this same object."""

    manga_id: int
    status: ReadingStatus
    chapter: float
    volume: int
    score: int | None
    started_on: date | None
    finished_on: date | None
    rereads: int
    rereading: bool
    notes: str
    added_at: datetime
    updated_at: datetime
    version: int
    device: str | None
    manga: MangaSummary


class EntryUpdate(Input):
    """Any field of an entry; only the fields present change (``null`` clears the
    nullable ones: score, started_on, finished_on)."""

    status: ReadingStatus | None = None
    chapter: ChapterNumber | None = None
    volume: Volume | None = None
    score: Score | None = None
    started_on: date | None = None
    finished_on: date | None = None
    rereads: Annotated[int, Field(ge=0, le=10_000, strict=True)] | None = None
    rereading: bool | None = None
    notes: Notes | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the client sent; a ``null`` for a field that cannot be empty is
        refused by the service."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class EntryAdd(EntryUpdate):
    manga_id: Annotated[int, Field(ge=1)]

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in super().changes().items() if k != "manga_id"}


class ProgressIn(Input):
    manga_id: Annotated[int, Field(ge=1)]
    chapter: ChapterNumber
    volume: Volume | None = None
    status: ReadingStatus | None = None


class RatingPublic(Schema):
    manga_id: int
    score: int
    updated_at: datetime


class RatingIn(Input):
    score: Score


class CommentPublic(Schema):
    id: int
    manga_id: int
    user_id: uuid.UUID
    username: str
    content: str
    created_at: datetime


class CommentIn(Input):
    content: UserText


# --- notifications and chat -------------------------------------------------------


class NotificationPublic(Schema):
    id: int
    kind: NotificationKind
    manga_id: int | None
    title: str
    message: str
    data: dict[str, Any]
    read: bool
    created_at: datetime


class ChatMessagePublic(Schema):
    id: int
    room_id: int
    user_id: uuid.UUID
    username: str
    content: str
    timestamp: datetime


# --- lists -------------------------------------------------------------------------


class Page(BaseModel, Generic[T]):
    data: list[T]
    page: int
    page_size: int
    total: int
