"""Federated search: the local catalog first, then what external sources know.

Every source asked is queried at the same time, each under its own deadline inside
the caller's budget; a slow or failing source contributes nothing and says why in
its :class:`SourceReport`. External answers are cached for 15 minutes (shared through
Redis when configured). A source that could not even be connected to is skipped
for a cool-down, so an install without internet answers from its own catalog.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import unicodedata
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from mangahub.cache import Cache, MemoryCache
from mangahub.domain.enums import SourceStatus
from mangahub.domain.errors import ValidationFailed
from mangahub.domain.schemas import (
    MAX_PAGE_SIZE,
    FederatedManga,
    FederatedResults,
    MangaDetails,
    SourceReport,
)
from mangahub.domain.text import check_text
from mangahub.services.catalog import CatalogService
from mangahub.services.throttle import AddressThrottle
from mangahub.sources.http import SourceHealth
from mangahub.sources.models import SearchSource, SourceError, SourceManga, SourcePage
from mangahub.sources.registry import SOURCE_NAMES
from mangahub.sources.titles import normalize_title

log = logging.getLogger(__name__)

LOCAL = "local"
CACHE_TTL = 15 * 60.0
COOLDOWN = 60.0
MAX_QUERY_LENGTH = 200
MAX_SOURCES_ASKED = 10  # a bound on a repeated parameter, far above the real sources
CACHE_WRITE_GRACE = 0.25  # seconds a cache write may take past the search's deadline
T = TypeVar("T")


def local_hit(manga: MangaDetails) -> FederatedManga:
    return FederatedManga(
        id=manga.id,
        slug=manga.slug,
        title=manga.title,
        alt_titles=manga.alt_titles,
        authors=manga.authors,
        description=manga.description,
        genres=manga.genres,
        status=manga.status,
        total_chapters=manga.total_chapters,
        cover_url=manga.cover_url,
        average_rating=manga.average_rating,
        year=manga.year,
        source=LOCAL,
        mangadex_id=manga.mangadex_id,
        anilist_id=manga.anilist_id,
    )


def external_hit(manga: SourceManga) -> FederatedManga:
    """A series only a source knows: no local id or slug; its rating is the source's."""
    record = manga.record
    return FederatedManga(
        id=None,
        slug=None,
        title=record.title,
        alt_titles=list(record.alt_titles),
        authors=list(record.authors),
        description=record.description,
        genres=list(record.genres),
        status=record.status,
        total_chapters=record.total_chapters,
        cover_url=record.cover_url,
        average_rating=manga.score,
        year=record.year,
        source=manga.source,
        mangadex_id=record.mangadex_id,
        anilist_id=record.anilist_id,
    )


def cache_key(source: str, query: str, limit: int, offset: int) -> str:
    normalized = " ".join(unicodedata.normalize("NFKC", query).casefold().split())
    digest = hashlib.sha256(normalized.encode()).hexdigest()[:32]
    return f"federated:{source}:{limit}:{offset}:{digest}"


@dataclass(slots=True)
class _Answer:
    report: SourceReport
    hits: list[FederatedManga] = field(default_factory=list)
    total: int = 0


class FederatedSearch:
    """Local catalog plus the given external sources; names in :data:`SOURCE_NAMES`
    without a source object are "disabled" (reported so when asked for)."""

    def __init__(
        self,
        catalog: CatalogService,
        cache: Cache | None = None,
        sources: Sequence[SearchSource] = (),
        *,
        source_timeout: float = 3.0,
        cooldown: float = COOLDOWN,
        cache_ttl: float = CACHE_TTL,
        anonymous_per_minute: int = 30,
    ) -> None:
        self._catalog = catalog
        self._cache: Cache = cache if cache is not None else MemoryCache(max_entries=10_000)
        self._anonymous = AddressThrottle(
            self._cache, "federated", anonymous_per_minute, 60, "anonymous source searches"
        )
        self._sources = {source.name: source for source in sources}
        self._source_timeout = source_timeout
        self._cooldown = cooldown
        self._cache_ttl = cache_ttl

    @property
    def source_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((LOCAL, *SOURCE_NAMES, *self._sources)))

    async def search(
        self,
        query: str,
        *,
        limit: int = 20,
        offset: int = 0,
        sources: Sequence[str] = (),
        timeout: float | None = None,
        anonymous_from: str | None = None,
    ) -> FederatedResults:
        """Series matching ``query``: up to ``limit`` from each source asked, local
        ones first, each series once. ``sources`` narrows which are asked (local and
        every enabled source when empty); ``timeout`` is the caller's whole budget in
        seconds. A blank query browses the local catalog only. ``anonymous_from``: the
        address of a caller without a token, whose searches that ask an external source
        count against a per-address budget."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        if offset < 0:
            raise ValidationFailed("offset must not be negative")
        if len(query) > MAX_QUERY_LENGTH:
            raise ValidationFailed(f"query must be at most {MAX_QUERY_LENGTH} characters")
        check_text(query, "query")
        asked = self._asked(sources)
        blank = not query.strip()
        external = [name for name in asked if name != LOCAL]
        if blank and sources and external:
            raise ValidationFailed("external sources need a query")
        if blank:
            external = []
        if external and anonymous_from is not None:
            await self._anonymous.admit(anonymous_from)
        budget = self._source_timeout if timeout is None else min(self._source_timeout, timeout)
        until = asyncio.get_running_loop().time() + budget  # every external step ends by then

        page = offset // limit + 1
        # A failing local search (database down) cancels the sources' requests and
        # reaches the caller as itself, not wrapped in an exception group.
        try:
            async with asyncio.TaskGroup() as group:
                local = (
                    group.create_task(self._local(query, limit, page)) if LOCAL in asked else None
                )
                asks = [
                    group.create_task(self._ask(name, query, limit, offset, until))
                    for name in external
                ]
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None
        others = [task.result() for task in asks]
        answers = others
        twins: list[FederatedManga] = []
        if local is not None:
            twins = await self._local_twins(others)
            answers = [local.result(), *others]
        return FederatedResults(
            results=_merge(answers, twins),
            total=sum(a.total for a in answers),
            page=page,
            sources=[a.report for a in answers],
        )

    def _asked(self, sources: Sequence[str]) -> list[str]:
        if not sources:
            return [LOCAL, *self._sources]
        if len(sources) > MAX_SOURCES_ASKED:
            raise ValidationFailed(f"at most {MAX_SOURCES_ASKED} source names")
        names = [s.strip().lower() for s in sources]
        unknown = sorted(set(names) - set(self.source_names))
        if unknown:
            raise ValidationFailed(
                f"unknown source(s): {', '.join(unknown)}",
                details={"known": list(self.source_names)},
            )
        return list(dict.fromkeys(names))

    async def _local(self, query: str, limit: int, page: int) -> _Answer:
        summaries, total = await self._catalog.advanced_search(query, page=page, page_size=limit)
        details = await self._catalog.get_many([m.id for m in summaries])
        hits = [local_hit(m) for m in details]
        report = SourceReport(name=LOCAL, status=SourceStatus.OK, results=len(hits))
        return _Answer(report, hits, total)

    async def _ask(self, name: str, query: str, limit: int, offset: int, until: float) -> _Answer:
        source = self._sources.get(name)
        if source is None:
            return _failed(name, SourceStatus.DISABLED, "not enabled on this server")
        health = getattr(source, "health", None)
        health = health if isinstance(health, SourceHealth) else None
        if health is not None and health.unreachable_within(self._cooldown):
            return _failed(name, SourceStatus.ERROR, "recently unreachable")
        key = cache_key(name, query, limit, offset)
        cached = _from_cache(await _bounded(self._cache.get(key), until))
        if cached is not None:
            hits, total = cached
            report = SourceReport(name=name, status=SourceStatus.CACHED, results=len(hits))
            return _Answer(report, hits, total)
        deadline = until - asyncio.get_running_loop().time()
        if deadline <= 0:
            return _failed(name, SourceStatus.TIMEOUT, "no time left for this source")
        outcome = await _within(source, query, limit, offset, deadline, health)
        if isinstance(outcome, _Answer):
            return outcome
        # Adult entries (AniList isAdult, MangaDex erotica) stay out of a general search.
        hits = [external_hit(m) for m in outcome.items if not m.record.extra.get("adult")]
        value = {"total": outcome.total, "results": [h.model_dump(mode="json") for h in hits]}
        # The cache is only a copy: a slow one is given up on, not waited for.
        grace = asyncio.get_running_loop().time() + CACHE_WRITE_GRACE
        await _bounded(self._cache.set(key, value, self._cache_ttl), max(until, grace))
        report = SourceReport(name=name, status=SourceStatus.OK, results=len(hits))
        return _Answer(report, hits, outcome.total)

    async def _local_twins(self, answers: Sequence[_Answer]) -> list[FederatedManga]:
        """Local series carrying a source id that the external hits carry (one query)."""
        mangadex = [h.mangadex_id for a in answers for h in a.hits if h.mangadex_id]
        anilist = [h.anilist_id for a in answers for h in a.hits if h.anilist_id]
        if not mangadex and not anilist:
            return []
        return [local_hit(m) for m in await self._catalog.find_by_source_ids(mangadex, anilist)]


async def _bounded(call: Awaitable[T], until: float) -> T | None:
    """``call``'s result, or None when it is not done by ``until`` (loop time)."""
    try:
        async with asyncio.timeout_at(until):
            return await call
    except TimeoutError:
        return None


async def _within(
    source: SearchSource,
    query: str,
    limit: int,
    offset: int,
    deadline: float,
    health: SourceHealth | None,
) -> SourcePage[SourceManga] | _Answer:
    """The source's page, or a failed :class:`_Answer` (timeout, error, unreachable).
    A failed connection ends the wait at once instead of at the deadline."""
    name = source.name
    search = asyncio.ensure_future(source.search(query, limit=limit, offset=offset))
    waits: set[asyncio.Future[Any]] = {search}
    if health is not None:
        waits.add(asyncio.ensure_future(health.wait_unreachable()))
    try:
        done, _ = await asyncio.wait(waits, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    if search not in done:
        if done:
            return _failed(name, SourceStatus.ERROR, "unreachable")
        return _failed(name, SourceStatus.TIMEOUT, f"no answer within {deadline:g}s")
    error = search.exception()
    if error is None:
        page: SourcePage[SourceManga] = search.result()
        return page
    if isinstance(error, SourceError):
        return _failed(name, SourceStatus.ERROR, str(error))
    log.error("federated search: %s failed unexpectedly", name, exc_info=error)
    return _failed(name, SourceStatus.ERROR, "internal error")


def _failed(name: str, status: SourceStatus, message: str) -> _Answer:
    return _Answer(SourceReport(name=name, status=status, results=0, error=message))


def _from_cache(value: Any) -> tuple[list[FederatedManga], int] | None:
    if not isinstance(value, dict):
        return None
    try:
        hits = [FederatedManga.model_validate(item) for item in value["results"]]
        return hits, int(value["total"])
    except (KeyError, TypeError, ValueError, ValidationError):
        return None  # an entry of an older shape: ask the source again


# --- merging ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Seen:
    """One series in the merged answer and everything known to identify it: the ids
    and titles of every hit found to be it, and the catalogs that listed it."""

    hit: FederatedManga
    titles: set[str] = field(default_factory=set)
    mangadex_ids: set[str] = field(default_factory=set)
    anilist_ids: set[int] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)

    def absorb(self, hit: FederatedManga) -> None:
        self.titles |= {t for t in map(normalize_title, (hit.title, *hit.alt_titles)) if t}
        if hit.mangadex_id is not None:
            self.mangadex_ids.add(hit.mangadex_id)
        if hit.anilist_id is not None:
            self.anilist_ids.add(hit.anilist_id)
        self.sources.add(hit.source)

    def join(self, other: _Seen) -> None:
        self.titles |= other.titles
        self.mangadex_ids |= other.mangadex_ids
        self.anilist_ids |= other.anilist_ids
        self.sources |= other.sources

    def shares_id(self, other: _Seen) -> bool:
        return bool(self.mangadex_ids & other.mangadex_ids or self.anilist_ids & other.anilist_ids)

    def matches(self, other: _Seen) -> bool:
        if self.shares_id(other):
            return True
        # Both know an id of the same source and the ids differ: different series.
        if (self.mangadex_ids and other.mangadex_ids) or (self.anilist_ids and other.anilist_ids):
            return False
        # One catalog's titles are not unique ("Fake" is three AniList series), so a
        # title only joins series that were found in different catalogs.
        return not self.sources & other.sources and not self.titles.isdisjoint(other.titles)


def _merge(
    answers: Sequence[_Answer], local_twins: Sequence[FederatedManga]
) -> list[FederatedManga]:
    """Hits in source order, each series once. An external hit for a series the
    catalog has (``local_twins``, found by source id) becomes that local series: the
    local one wins, even when the local search did not rank it on this page. The
    first source to list a series keeps it; a later external duplicate only lends
    the ids the first one lacks; a local series is never changed."""
    by_mangadex = {t.mangadex_id: t for t in local_twins if t.mangadex_id is not None}
    by_anilist = {t.anilist_id: t for t in local_twins if t.anilist_id is not None}
    merged: list[_Seen] = []
    for answer in answers:
        for hit in answer.hits:
            twin = None
            if hit.source != LOCAL:
                twin = by_mangadex.get(hit.mangadex_id or "") or by_anilist.get(hit.anilist_id or 0)
            new = _Seen(twin or hit)
            new.absorb(hit)
            if twin is not None:
                new.absorb(twin)
            # An id match anywhere beats a title match that happens to come earlier.
            first = next((seen for seen in merged if seen.shares_id(new)), None) or next(
                (seen for seen in merged if seen.matches(new)), None
            )
            if first is None:
                merged.append(new)
                continue
            if first.hit.source != LOCAL:
                if new.hit.source == LOCAL:
                    first.hit = new.hit
                else:
                    first.hit = first.hit.model_copy(
                        update={
                            "mangadex_id": first.hit.mangadex_id or hit.mangadex_id,
                            "anilist_id": first.hit.anilist_id or hit.anilist_id,
                        }
                    )
            first.join(new)
    return [seen.hit for seen in merged]
