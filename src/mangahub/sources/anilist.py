"""AniList (GraphQL, https://graphql.anilist.co): the client and the parser of its
``Media`` objects. MANGA entries only.

User input only ever travels as GraphQL variables, never inside the query text.
AniList's API terms restrict use inside tracker services, so MangaHub leaves it off
unless the operator turns it on (``anilist_enabled``; see docs/sources.md).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaStatus
from mangahub.sources.http import RetryPolicy, SourceClient, SourceHttp
from mangahub.sources.limiter import AsyncRateLimiter
from mangahub.sources.models import (
    SourceManga,
    SourcePage,
    SourceParseError,
    SourceRejected,
    parse_each,
)
from mangahub.sources.titles import normalize_title

NAME = "anilist"
MAX_PER_PAGE = 50  # AniList's own cap on Page.perPage
_STATUS = {
    "RELEASING": MangaStatus.ONGOING,
    "NOT_YET_RELEASED": MangaStatus.ONGOING,
    "FINISHED": MangaStatus.COMPLETED,
    "HIATUS": MangaStatus.HIATUS,
    "CANCELLED": MangaStatus.CANCELLED,
}
# Staff roles that make someone an author of the series (not "Assistant", "Translator"…).
_AUTHOR_ROLE = re.compile(r"\b(story|art|original creator)\b", re.IGNORECASE)
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")

MEDIA_PAGE_QUERY = """
query ($page: Int, $perPage: Int, $search: String, $ids: [Int], $sort: [MediaSort]) {
  Page(page: $page, perPage: $perPage) {
    pageInfo { total currentPage lastPage hasNextPage perPage }
    media(type: MANGA, search: $search, id_in: $ids, sort: $sort) {
      id idMal type format status isAdult siteUrl updatedAt
      title { romaji english native }
      synonyms
      description(asHtml: false)
      genres chapters volumes averageScore meanScore popularity
      startDate { year month day }
      coverImage { extraLarge large }
      staff(perPage: 6, sort: [RELEVANCE, ID]) { edges { role node { name { full } } } }
    }
  }
}
"""


# --- parser ---------------------------------------------------------------------------


def parse_media(media: Mapping[str, Any]) -> SourceManga:
    """An AniList ``Media`` object; fields the query did not ask for may be absent."""
    try:
        return _parse_media(media)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SourceParseError(NAME, f"unexpected media object: {exc!r}") from exc


def _parse_media(media: Mapping[str, Any]) -> SourceManga:
    anilist_id = int(media["id"])
    titles = media.get("title") or {}
    names = [titles.get("english"), titles.get("romaji"), titles.get("native")]
    present = [str(n).strip() for n in names if n and str(n).strip()]
    if not present:
        raise ValueError("media without a title")
    title = present[0]
    alt = [*present[1:], *(media.get("synonyms") or ())]
    start = media.get("startDate") or {}
    score = media.get("averageScore")
    cover = media.get("coverImage") or {}
    updated = media.get("updatedAt")
    record = SeriesRecord(
        title=title,
        status=_STATUS.get(str(media.get("status")), MangaStatus.ONGOING),
        alt_titles=_unique(t for t in alt if t and str(t).strip() != title),
        authors=_authors(media),
        genres=_unique(media.get("genres") or ()),
        total_chapters=media.get("chapters") if isinstance(media.get("chapters"), int) else None,
        description=strip_html(media.get("description") or ""),
        cover_url=cover.get("extraLarge") or cover.get("large") or None,
        year=start.get("year") if isinstance(start.get("year"), int) else None,
        anilist_id=anilist_id,
        popularity=int(media.get("popularity") or 0),
        extra={"adult": bool(media.get("isAdult")), "mal_id": media.get("idMal")},
    )
    return SourceManga(
        source=NAME,
        source_id=str(anilist_id),
        record=record,
        score=score / 10 if isinstance(score, int | float) else None,
        url=media.get("siteUrl") or f"https://anilist.co/manga/{anilist_id}",
        updated_at=datetime.fromtimestamp(updated, UTC) if isinstance(updated, int) else None,
    )


def strip_html(text: str) -> str:
    """AniList descriptions carry ``<br>``, ``<i>`` and entities: plain text out."""
    text = _BREAK.sub("\n", text)
    text = html.unescape(_TAG.sub("", text))
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _authors(media: Mapping[str, Any]) -> tuple[str, ...]:
    staff = media.get("staff") or media.get("staffPreview") or {}
    return _unique(
        (edge.get("node") or {}).get("name", {}).get("full")
        for edge in staff.get("edges") or ()
        if _AUTHOR_ROLE.search(str(edge.get("role") or ""))
    )


def _unique(values: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(v).strip() for v in values if v and str(v).strip()))


def all_titles(manga: SourceManga) -> list[str]:
    return [manga.record.title, *manga.record.alt_titles]


# --- client ---------------------------------------------------------------------------


class AniListClient(SourceClient):
    """AniList over one pooled connection set and one shared limiter (default 30
    requests a minute: AniList answers 429 beyond that, whatever its headers say)."""

    name = NAME

    def __init__(
        self,
        base_url: str,
        *,
        requests_per_minute: float = 30.0,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # No burst: AniList counts a sliding minute, so saved-up tokens would overrun it.
        self.limiter = AsyncRateLimiter(requests_per_minute / 60.0, 1)
        self._http = SourceHttp(
            NAME, base_url, limiter=self.limiter, timeout=timeout, retry=retry, transport=transport
        )

    async def search(self, query: str, *, limit: int, offset: int = 0) -> SourcePage[SourceManga]:
        """MANGA entries matching ``query``, best match first. AniList pages by page
        number; an offset that is not a multiple of ``limit`` costs a second page."""
        per_page = max(1, min(limit, MAX_PER_PAGE))
        first = offset // per_page + 1
        skip = offset % per_page
        variables: dict[str, Any] = {"search": query, "sort": ["SEARCH_MATCH"]}
        items, total = await self._page(first, per_page, variables)
        if skip and len(items) == per_page:
            more, total = await self._page(first + 1, per_page, variables)
            items = items + more
        page_items, skipped = parse_each(NAME, items[skip : skip + per_page], parse_media)
        return SourcePage(
            items=page_items, offset=offset, limit=per_page, total=total, skipped=skipped
        )

    async def media(self, ids: Sequence[int]) -> list[SourceManga]:
        """The MANGA entries with these ids (unknown ids are left out), 50 per request."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        found: list[SourceManga] = []
        for start in range(0, len(wanted), MAX_PER_PAGE):
            chunk = wanted[start : start + MAX_PER_PAGE]
            variables = {"ids": chunk, "sort": ["ID"]}
            items, _ = await self._page(1, MAX_PER_PAGE, variables)
            found.extend(parse_each(NAME, items, parse_media)[0])
        return found

    async def find(self, title: str) -> SourceManga | None:
        """The MANGA entry one of whose titles is ``title`` (ignoring case, spacing and
        punctuation), or None: a loose match would attach the wrong series' data."""
        wanted = normalize_title(title)
        if not wanted:
            return None
        page = await self.search(title, limit=10)
        for manga in page.items:
            if any(normalize_title(t) == wanted for t in all_titles(manga)):
                return manga
        return None

    async def _page(
        self, page: int, per_page: int, variables: Mapping[str, Any]
    ) -> tuple[list[Mapping[str, Any]], int]:
        body = await self._http.post(
            "",
            {
                "query": MEDIA_PAGE_QUERY,
                "variables": {"page": page, "perPage": per_page, **variables},
            },
        )
        try:
            if body.get("errors") and not body.get("data"):
                error = body["errors"][0]
                status = error.get("status") if isinstance(error.get("status"), int) else 400
                raise SourceRejected(NAME, status, str(error.get("message") or "GraphQL error"))
            data = body["data"]["Page"]
            # The schema allows null entries; those are skipped like unparseable ones.
            items = [
                m for m in data["media"] if not isinstance(m, Mapping) or m.get("type") != "ANIME"
            ]
            info = data.get("pageInfo") or {}
            seen = (page - 1) * per_page + len(data["media"])
            total = info.get("total")
            if not isinstance(total, int) or total < seen:
                total = seen + (1 if info.get("hasNextPage") else 0)
            return items, total
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise SourceParseError(NAME, f"unexpected GraphQL answer: {exc!r}") from exc
