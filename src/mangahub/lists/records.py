"""The one record every list format is read into and written from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from mangahub.domain.enums import MangaFormat, ReadingStatus


class ListFormat(StrEnum):
    MAL_XML = "mal"
    ANILIST_JSON = "anilist"
    NATIVE_JSON = "json"


@dataclass(frozen=True, slots=True)
class SeriesRef:
    """What a list file says about the series itself (used to match it, or to
    create a local series when nothing matches)."""

    title: str
    alt_titles: tuple[str, ...] = ()
    mal_id: int | None = None
    anilist_id: int | None = None
    mangadex_id: str | None = None
    total_chapters: int | None = None
    volumes: int | None = None
    format: MangaFormat | None = None
    local_id: int | None = None  # this server's manga id, in our own export only


@dataclass(frozen=True, slots=True)
class ImportedEntry:
    """One reading entry as it travels in a list file.

    `score` is already on our 1-10 scale (None = no score); dates are plain dates;
    `added_at`/`updated_at` are what the file says, when it says anything."""

    series: SeriesRef
    status: ReadingStatus
    chapter: float = 0.0
    volume: int | None = None
    score: int | None = None
    started_on: date | None = None
    finished_on: date | None = None
    rereads: int = 0
    rereading: bool = False
    notes: str | None = None
    added_at: datetime | None = None
    updated_at: datetime | None = None
    device: str | None = None

    @property
    def title(self) -> str:
        return self.series.title
