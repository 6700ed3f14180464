"""Closed sets of states, shared by storage, services and every door."""

from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class MangaStatus(StrEnum):
    ONGOING = "ongoing"
    COMPLETED = "completed"
    HIATUS = "hiatus"
    CANCELLED = "cancelled"


class MangaFormat(StrEnum):
    MANGA = "manga"
    MANHWA = "manhwa"
    MANHUA = "manhua"
    ONE_SHOT = "one_shot"
    NOVEL = "novel"
    DOUJINSHI = "doujinshi"
    OTHER = "other"


class ReadingStatus(StrEnum):
    READING = "reading"
    COMPLETED = "completed"
    PLAN_TO_READ = "plan_to_read"
    ON_HOLD = "on_hold"
    DROPPED = "dropped"


class EntrySort(StrEnum):
    """Orders of the reader's list."""

    UPDATED = "updated"
    TITLE = "title"
    SCORE = "score"
    PROGRESS = "progress"
    ADDED = "added"


class NotificationKind(StrEnum):
    NEW_MANGA = "new_manga"
    NEW_CHAPTER = "new_chapter"
    MANGA_UPDATE = "manga_update"
    SYSTEM = "system"


class SortBy(StrEnum):
    POPULARITY = "popularity"
    RATING = "rating"
    TITLE = "title"
    UPDATED = "updated"
    CHAPTERS = "chapters"


class SourceStatus(StrEnum):
    """Outcome of one source in a federated search."""

    OK = "ok"  # answered within its deadline
    CACHED = "cached"  # answered from the 15-minute cache, the source was not asked
    TIMEOUT = "timeout"  # missed its deadline: contributed nothing
    ERROR = "error"  # failed (HTTP 5xx, 429, transport): contributed nothing
    DISABLED = "disabled"  # asked for, but not configured on this server
