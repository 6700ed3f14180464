"""What an external source hands back, already parsed: plain frozen data, no I/O.

Every client (MangaDex REST, AniList GraphQL) returns these types, so the sync jobs
and federated search never look at a source's wire format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from mangahub.catalog.records import SeriesRecord

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SourceManga:
    """One series as a source describes it, with the catalog record built from it."""

    source: str  # "mangadex" | "anilist"
    source_id: str  # MangaDex UUID, or the AniList id as text
    record: SeriesRecord
    score: float | None = None  # the source's own 0-10 score, when it has one
    url: str | None = None  # the series' page on the source, for credit links
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SourceChapter:
    """One chapter of a MangaDex feed."""

    source_id: str  # chapter UUID
    manga_source_id: str
    number: float | None  # None for oneshots and unnumbered extras
    title: str | None
    volume: str | None
    language: str
    published_at: datetime | None
    scanlation_group: str | None  # credited by name when the feed expands it, else id


@dataclass(frozen=True, slots=True)
class SourcePage(Generic[T]):
    """One page of a source's collection, with its paging numbers."""

    items: tuple[T, ...]
    offset: int
    limit: int
    total: int
    skipped: int = 0  # entries of this page the parser could not read (logged)

    @property
    def next_offset(self) -> int | None:
        read = len(self.items) + self.skipped
        end = self.offset + read
        return end if read and end < self.total else None


class SourceError(Exception):
    """A source could not give an answer; ``source`` names which one."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class SourceUnavailable(SourceError):
    """Transport errors, timeouts, 5xx or 429 that outlasted every retry."""


class SourceRejected(SourceError):
    """The source refused the request (a 4xx other than 429): retrying cannot help."""

    def __init__(self, source: str, status: int, message: str) -> None:
        super().__init__(source, f"HTTP {status}: {message}")
        self.status = status


class SourceParseError(SourceError):
    """The source answered with a shape its parser does not understand."""


class SearchSource(Protocol):
    """A source that can answer a title search (what federated search needs)."""

    @property
    def name(self) -> str: ...

    async def search(
        self, query: str, *, limit: int, offset: int = 0
    ) -> SourcePage[SourceManga]: ...


def parse_each(
    source: str, entities: Iterable[Any], parse: Callable[[Mapping[str, Any]], T]
) -> tuple[tuple[T, ...], int]:
    """Parse every entity of a page, skipping (and logging) the ones that do not parse:
    one odd entry must not stop a job at the same page on every run.
    Returns the parsed items and how many were skipped."""
    items: list[T] = []
    skipped = 0
    for entity in entities:
        try:
            if not isinstance(entity, Mapping):
                raise SourceParseError(source, f"entry is {type(entity).__name__}, not an object")
            items.append(parse(entity))
        except SourceParseError as exc:
            skipped += 1
            ident = entity.get("id") if isinstance(entity, Mapping) else None
            log.warning("%s: skipped an entry that does not parse (id %s): %s", source, ident, exc)
    return tuple(items), skipped
