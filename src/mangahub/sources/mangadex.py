"""MangaDex (REST, https://api.mangadex.org): the client and the parsers of its
manga and chapter entities.

Data from MangaDex is credited to MangaDex, and chapters to their scanlation
groups, as its acceptable-use policy asks (see docs/sources.md).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx

from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaStatus
from mangahub.sources.http import RetryPolicy, SourceClient, SourceHttp, utc_naive_iso
from mangahub.sources.limiter import AsyncRateLimiter
from mangahub.sources.models import (
    SourceChapter,
    SourceManga,
    SourcePage,
    SourceParseError,
    SourceRejected,
    parse_each,
)

T = TypeVar("T")

NAME = "mangadex"
COVER_URL = "https://uploads.mangadex.org/covers/{manga_id}/{file_name}"
TITLE_URL = "https://mangadex.org/title/{manga_id}"
# Tag groups that are genres to a reader; "format" (Long Strip…) and "content" are not.
_GENRE_GROUPS = frozenset({"genre", "theme"})
_STATUS = {
    "ongoing": MangaStatus.ONGOING,
    "completed": MangaStatus.COMPLETED,
    "hiatus": MangaStatus.HIATUS,
    "cancelled": MangaStatus.CANCELLED,
}
_ADULT_RATINGS = frozenset({"erotica", "pornographic"})
_MANGA_INCLUDES = (("includes[]", "author"), ("includes[]", "artist"), ("includes[]", "cover_art"))
# MangaDex allows a letter after the number ("10a", a part of chapter 10).
_CHAPTER_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)?)")


# --- parsers ------------------------------------------------------------------------


def parse_manga(entity: Mapping[str, Any]) -> SourceManga:
    """A MangaDex ``manga`` entity (relationships expanded or ids only)."""
    try:
        return _parse_manga(entity)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SourceParseError(NAME, f"unexpected manga entity: {exc!r}") from exc


def _parse_manga(entity: Mapping[str, Any]) -> SourceManga:
    manga_id = str(entity["id"])
    attrs = entity["attributes"]
    titles = attrs.get("title") or {}
    title = localized(titles, ("en", "ja-ro")) or ""
    if not title.strip():
        raise ValueError("manga without a title")
    alt = [*titles.values(), *(v for item in attrs.get("altTitles") or () for v in item.values())]
    relationships = entity.get("relationships") or ()
    links = attrs.get("links") or {}
    record = SeriesRecord(
        title=title,
        status=_STATUS.get(str(attrs.get("status")), MangaStatus.ONGOING),
        alt_titles=_unique(t for t in alt if t and t != title),
        authors=_unique(
            str(rel["attributes"]["name"])
            for rel in relationships
            if rel.get("type") in ("author", "artist") and (rel.get("attributes") or {}).get("name")
        ),
        genres=_unique(
            str(name)
            for tag in attrs.get("tags") or ()
            if tag["attributes"].get("group") in _GENRE_GROUPS
            and (name := localized(tag["attributes"].get("name") or {}, ("en",)))
        ),
        total_chapters=_whole_number(attrs.get("lastChapter")),
        description=localized(attrs.get("description") or {}, ("en",)) or "",
        cover_url=_cover_url(manga_id, relationships),
        year=attrs.get("year") if isinstance(attrs.get("year"), int) else None,
        mangadex_id=manga_id,
        anilist_id=_int_or_none(links.get("al")),
        extra={
            "adult": attrs.get("contentRating") in _ADULT_RATINGS,
            "content_rating": attrs.get("contentRating"),
            "original_language": attrs.get("originalLanguage"),
        },
    )
    return SourceManga(
        source=NAME,
        source_id=manga_id,
        record=record,
        url=TITLE_URL.format(manga_id=manga_id),
        created_at=_datetime(attrs.get("createdAt")),
        updated_at=_datetime(attrs.get("updatedAt")),
    )


def parse_chapter(entity: Mapping[str, Any]) -> SourceChapter:
    """A MangaDex ``chapter`` entity from a feed; oneshots have no number."""
    try:
        attrs = entity["attributes"]
        relationships = entity.get("relationships") or ()
        manga_id = next((str(rel["id"]) for rel in relationships if rel.get("type") == "manga"), "")
        group = next(
            (
                str((rel.get("attributes") or {}).get("name") or rel["id"])
                for rel in relationships
                if rel.get("type") == "scanlation_group"
            ),
            None,
        )
        return SourceChapter(
            source_id=str(entity["id"]),
            manga_source_id=manga_id,
            number=chapter_number(attrs.get("chapter")),
            title=attrs.get("title") or None,
            volume=attrs.get("volume") or None,
            language=str(attrs.get("translatedLanguage") or ""),
            published_at=_datetime(attrs.get("publishAt") or attrs.get("readableAt")),
            scanlation_group=group,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SourceParseError(NAME, f"unexpected chapter entity: {exc!r}") from exc


def chapter_number(label: Any) -> float | None:
    """``"10.5"`` → 10.5, ``"10a"`` → 10.0; None for a oneshot or a label without a
    number (one odd label must not fail the whole feed)."""
    found = _CHAPTER_NUMBER.match(str(label)) if label is not None else None
    return float(found.group(1)) if found else None


def localized(values: Mapping[str, str], prefer: Sequence[str]) -> str | None:
    """The first non-empty value in the ``prefer`` languages, else any non-empty one."""
    for lang in prefer:
        value = values.get(lang)
        if value and value.strip():
            return value.strip()
    for value in values.values():
        if value and value.strip():
            return value.strip()
    return None


def _cover_url(manga_id: str, relationships: Sequence[Mapping[str, Any]]) -> str | None:
    for rel in relationships:
        if rel.get("type") == "cover_art":
            file_name = (rel.get("attributes") or {}).get("fileName")
            if file_name:
                return COVER_URL.format(manga_id=manga_id, file_name=file_name)
    return None


def _unique(values: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(v).strip() for v in values if v and str(v).strip()))


def _whole_number(value: Any) -> int | None:
    """``lastChapter`` ("120", "10.5", "") as a chapter count, when it is one."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number >= 1 else None


def _int_or_none(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _datetime(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value))


def _page_of(body: Any, parse: Callable[[Mapping[str, Any]], T]) -> SourcePage[T]:
    try:
        items, skipped = parse_each(NAME, body["data"], parse)
        return SourcePage(
            items=items,
            offset=int(body.get("offset", 0)),
            limit=int(body.get("limit", len(items) + skipped)),
            total=int(body.get("total", len(items) + skipped)),
            skipped=skipped,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceParseError(NAME, f"unexpected collection: {exc!r}") from exc


# --- client ---------------------------------------------------------------------------


class MangaDexClient(SourceClient):
    """MangaDex over one pooled connection set and one shared rate limiter
    (default 5 requests/s, bursts of 10). Searches (asked for by people, often
    anonymous) also pass ``search_limiter``, which holds them to ``1 - sync_reserve``
    of that rate: the rest is always left for the sync jobs."""

    name = NAME

    def __init__(
        self,
        base_url: str,
        *,
        rate_per_second: float = 5.0,
        burst: int = 10,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sync_reserve: float = 0.0,
    ) -> None:
        if not 0 <= sync_reserve < 1:
            raise ValueError("sync_reserve must be in [0, 1)")
        self.limiter = AsyncRateLimiter(rate_per_second, burst)
        share = 1 - sync_reserve
        self.search_limiter = AsyncRateLimiter(
            rate_per_second * share, max(1, math.floor(burst * share))
        )
        self._http = SourceHttp(
            NAME, base_url, limiter=self.limiter, timeout=timeout, retry=retry, transport=transport
        )

    async def search(self, query: str, *, limit: int, offset: int = 0) -> SourcePage[SourceManga]:
        """Series whose titles match ``query``, most relevant first."""
        params: list[tuple[str, str | int]] = [
            ("title", query),
            ("limit", limit),
            ("offset", offset),
            ("order[relevance]", "desc"),
            *_MANGA_INCLUDES,
        ]
        page = await self._http.get("/manga", params, share=self.search_limiter)
        return _page_of(page, parse_manga)

    async def list_manga(
        self, *, offset: int = 0, limit: int = 100, created_since: datetime | None = None
    ) -> SourcePage[SourceManga]:
        """Every series, oldest first (a stable order for paging and resuming)."""
        params: list[tuple[str, str | int]] = [
            ("limit", limit),
            ("offset", offset),
            ("order[createdAt]", "asc"),
            *_MANGA_INCLUDES,
        ]
        if created_since is not None:
            params.append(("createdAtSince", utc_naive_iso(created_since)))
        return _page_of(await self._http.get("/manga", params), parse_manga)

    async def get_manga(self, mangadex_id: str) -> SourceManga:
        body = await self._http.get(f"/manga/{_checked_id(mangadex_id)}", _MANGA_INCLUDES)
        if not isinstance(body, dict) or "data" not in body:
            raise SourceParseError(NAME, "entity response without data")
        return parse_manga(body["data"])

    async def chapter_feed(
        self,
        mangadex_id: str,
        *,
        offset: int = 0,
        limit: int = 100,
        languages: Sequence[str] = ("en",),
    ) -> SourcePage[SourceChapter]:
        """A series' chapters in the given languages, by chapter number."""
        params: list[tuple[str, str | int]] = [
            ("limit", limit),
            ("offset", offset),
            ("order[chapter]", "asc"),
            ("includes[]", "scanlation_group"),
            *(("translatedLanguage[]", lang) for lang in languages),
        ]
        path = f"/manga/{_checked_id(mangadex_id)}/feed"
        return _page_of(await self._http.get(path, params), parse_chapter)


def _checked_id(mangadex_id: str) -> str:
    """MangaDex ids are UUIDs; anything else never reaches a URL path."""
    try:
        return str(uuid.UUID(mangadex_id))
    except (ValueError, TypeError, AttributeError):
        raise SourceRejected(NAME, 400, f"not a MangaDex id: {mangadex_id!r}"[:200]) from None
