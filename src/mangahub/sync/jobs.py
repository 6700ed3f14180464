"""The four sync jobs. Each fetches from a source, hands the catalog side to the
services, and commits its cursor after every page, so a crash resumes where it
stopped (re-doing at most one page, which the idempotent writes absorb).

- ``mangadex_import``: every MangaDex series, pages of 100 (authors, artists, cover
  art), oldest first. MangaDex serves at most 10,000 results per query, so past that
  the walk restarts at offset 0 from the newest ``createdAt`` seen.
- ``mangadex_poll``: series created since the newest one seen (``createdAtSince``);
  series new to the catalog raise ``new_manga`` (to every reader, the notification
  service's rule).
- ``mangadex_chapters``: the English feed of every series with a MangaDex id, the
  never/oldest-checked first, through a bounded worker pool sharing one client.
- ``anilist_enrich``: popularity, alt titles, chapter counts and AniList ids.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from mangahub.services.catalog import CatalogService
from mangahub.services.notifications import NotificationService
from mangahub.services.source_sync import SourceSyncService, TrackedSeries
from mangahub.sources.models import (
    SourceChapter,
    SourceManga,
    SourcePage,
    SourceRejected,
)
from mangahub.storage.types import utcnow
from mangahub.sync.pool import WorkerPool
from mangahub.sync.state import JobState, JobType

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # MangaDex's largest /manga page
FEED_PAGE_SIZE = 500  # MangaDex's largest feed page
RESULT_WINDOW = 10_000  # MangaDex refuses offset + limit beyond this
ENRICH_BATCH = 50  # AniList's id_in page


class MangaDexSource(Protocol):
    """What the MangaDex jobs need of a client (MangaDexClient satisfies it)."""

    async def list_manga(
        self, *, offset: int = 0, limit: int = 100, created_since: datetime | None = None
    ) -> SourcePage[SourceManga]: ...

    async def chapter_feed(
        self,
        mangadex_id: str,
        *,
        offset: int = 0,
        limit: int = 100,
        languages: Sequence[str] = ("en",),
    ) -> SourcePage[SourceChapter]: ...


class AniListSource(Protocol):
    """What enrichment needs of a client (AniListClient satisfies it)."""

    async def media(self, ids: Sequence[int]) -> list[SourceManga]: ...

    async def find(self, title: str) -> SourceManga | None: ...


class JobUnavailable(Exception):
    """The job's source is not configured (disabled, or no URL)."""


Progress = Callable[[int, int | None], None]  # (done, total if known)
Checkpoint = Callable[[str | None, Mapping[str, Any]], Awaitable[None]]


@dataclass
class JobContext:
    """What a job runs with: services, clients, and how to report progress."""

    catalog: CatalogService
    chapters: SourceSyncService
    notifications: NotificationService
    mangadex: MangaDexSource | None
    anilist: AniListSource | None
    workers: int = 4
    poll_interval: timedelta = timedelta(hours=24)
    progress: Progress | None = None
    states: Callable[[JobType], Awaitable[JobState]] | None = None

    def report(self, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(done, total)

    def need_mangadex(self) -> MangaDexSource:
        if self.mangadex is None:
            raise JobUnavailable("MangaDex is disabled (mangadex_enabled / mangadex_url)")
        return self.mangadex

    def need_anilist(self) -> AniListSource:
        if self.anilist is None:
            raise JobUnavailable("AniList is disabled (anilist_enabled / anilist_url)")
        return self.anilist


@dataclass
class JobResult:
    """How a run ended: the cursor to keep and the counts for ``metadata``."""

    cursor: str | None
    counts: dict[str, Any] = field(default_factory=dict)


JobFunc = Callable[[JobContext, JobState, Checkpoint], Coroutine[Any, Any, JobResult]]


# --- walking MangaDex's series list -------------------------------------------------------


@dataclass
class _Walk:
    """Position in the series list: ``createdAtSince`` (None: from the start) + offset."""

    since: str | None = None
    offset: int = 0

    @classmethod
    def load(cls, cursor: str | None) -> _Walk:
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(since=data.get("since"), offset=int(data.get("offset", 0)))

    def dump(self) -> str:
        return json.dumps({"since": self.since, "offset": self.offset})


async def _walk_pages(
    client: MangaDexSource,
    walk: _Walk,
    on_page: Callable[[SourcePage[SourceManga], _Walk], Awaitable[None]],
    *,
    workers: int = 1,
) -> None:
    """Every page from ``walk`` on, one result window at a time: past MangaDex's
    10,000-result window the walk restarts at offset 0 from the newest ``createdAt``
    seen. ``on_page`` runs one page at a time and gets the position to commit."""
    nxt: _Walk | None = walk
    while nxt is not None:
        nxt = await _walk_window(client, nxt, on_page, workers)


async def _walk_window(
    client: MangaDexSource,
    walk: _Walk,
    on_page: Callable[[SourcePage[SourceManga], _Walk], Awaitable[None]],
    workers: int,
) -> _Walk | None:
    """One window: its first page gives the total, the rest is fetched by ``workers``
    at once (sharing the client's rate limit, so a slow source still gets the full
    request rate). The position committed after a page is the lowest page not yet
    handled, so a crash redoes at most the pages that were in flight. Returns where
    the next window starts, or None at the end."""
    since = datetime.fromisoformat(walk.since) if walk.since else None
    first = await client.list_manga(offset=walk.offset, limit=PAGE_SIZE, created_since=since)
    offsets = [
        o
        for o in range(walk.offset + PAGE_SIZE, first.total, PAGE_SIZE)
        if o + PAGE_SIZE <= RESULT_WINDOW
    ]
    window_end = (offsets[-1] if offsets else walk.offset) + PAGE_SIZE
    more_beyond = bool(first.items) and window_end < first.total
    pending = {walk.offset, *offsets}
    newest = since
    lock = asyncio.Lock()

    def position() -> _Walk:
        if pending:
            return _Walk(since=walk.since, offset=min(pending))
        if more_beyond:
            if newest is None or newest == since:
                raise SourceRejected("mangadex", 400, "result window exhausted at one createdAt")
            return _Walk(since=newest.isoformat(), offset=0)
        # Done: the last page, so a resume from here re-reads one page and stays
        # inside the window (the total may end within a page of its edge).
        return _Walk(since=walk.since, offset=window_end - PAGE_SIZE)

    async def handle(offset: int, page: SourcePage[SourceManga]) -> None:
        nonlocal newest
        async with lock:
            stamps = [m.created_at for m in page.items if m.created_at is not None]
            if stamps:
                newest = max([*stamps, *([newest] if newest else [])])
            pending.discard(offset)
            await on_page(page, position())

    async def fetch(offset: int) -> None:
        await handle(
            offset,
            await client.list_manga(offset=offset, limit=PAGE_SIZE, created_since=since),
        )

    await handle(walk.offset, first)
    if offsets:
        async with WorkerPool(fetch, workers=workers) as pool:
            for offset in offsets:
                await pool.put(offset)
            await pool.join()
    return position() if more_beyond else None


def _newest(items: Sequence[SourceManga], current: str | None) -> str | None:
    stamps = [m.created_at for m in items if m.created_at is not None]
    if current:
        stamps.append(datetime.fromisoformat(current))
    return max(stamps).isoformat() if stamps else None


# --- the jobs ----------------------------------------------------------------------------


async def mangadex_import(ctx: JobContext, state: JobState, checkpoint: Checkpoint) -> JobResult:
    """Initial import; the cursor is cleared when it completes (a later run starts over,
    changing nothing that is current)."""
    client = ctx.need_mangadex()
    walk = _Walk.load(state.cursor)
    counts: dict[str, Any] = {
        "pages": 0,
        "series_seen": 0,
        "series_written": 0,
        "newest_created_at": None,
    }
    if state.cursor:
        # Resuming: the counts go on from what the interrupted run committed.
        counts.update({k: state.metadata[k] for k in counts if k in state.metadata})
        log.info("mangadex_import: resuming at %s", state.cursor)

    async def on_page(page: SourcePage[SourceManga], after: _Walk) -> None:
        written = await ctx.catalog.import_series(m.record for m in page.items)
        await ctx.chapters.mark_synced([m.source_id for m in page.items])
        counts["pages"] += 1
        counts["series_seen"] += len(page.items)
        counts["series_written"] += written
        counts["newest_created_at"] = _newest(page.items, counts["newest_created_at"])
        await checkpoint(after.dump(), counts)
        ctx.report(counts["series_seen"], max(page.total, counts["series_seen"]))

    await _walk_pages(client, walk, on_page, workers=ctx.workers)
    return JobResult(cursor=None, counts=counts)


async def mangadex_poll(ctx: JobContext, state: JobState, checkpoint: Checkpoint) -> JobResult:
    """Series created since the cursor (the newest ``createdAt`` seen). A first poll
    starts from the newest series the import saw, else one poll interval ago."""
    client = ctx.need_mangadex()
    since = state.cursor
    if since is None and ctx.states is not None:
        since = (await ctx.states("mangadex_import")).metadata.get("newest_created_at")
    if since is None:
        since = (utcnow() - ctx.poll_interval).isoformat()
    counts: dict[str, Any] = {"pages": 0, "series_seen": 0, "series_new": 0, "notified": 0}
    newest: str | None = since

    async def on_page(page: SourcePage[SourceManga], after: _Walk) -> None:
        nonlocal newest
        ids = [m.source_id for m in page.items]
        # New rows get ids above every existing one; a stored series the import only
        # linked (matched by AniList id) keeps its id and is not announced.
        last_id = await ctx.chapters.last_series_id()
        await ctx.catalog.import_series(m.record for m in page.items)
        await ctx.chapters.mark_synced(ids)
        stored = await ctx.chapters.ids_by_mangadex(ids)
        for item in page.items:
            if stored.get(item.source_id, 0) > last_id:
                counts["series_new"] += 1
                counts["notified"] += await ctx.notifications.notify_new_manga(
                    stored[item.source_id], item.record.title
                )
        counts["pages"] += 1
        counts["series_seen"] += len(page.items)
        newest = _newest(page.items, newest)
        # The cursor moves only once the whole window is read; mid-way, the walk resumes.
        await checkpoint(since, {**counts, "walk": after.dump()})
        ctx.report(counts["series_seen"], page.total)

    # A "walk" in the metadata: the previous poll stopped mid-way; go on from there.
    walk = _Walk.load(state.metadata.get("walk"))
    if walk.since is None:
        walk.since = since
    await _walk_pages(client, walk, on_page)
    return JobResult(cursor=newest, counts=counts)


async def mangadex_chapters(ctx: JobContext, state: JobState, checkpoint: Checkpoint) -> JobResult:
    """The English feed of every tracked series not checked since this run began
    (or since the interrupted run it resumes began)."""
    client = ctx.need_mangadex()
    # The cursor is the run's start: a resumed run skips the series already checked.
    started = datetime.fromisoformat(state.cursor) if state.cursor else utcnow()
    counts: dict[str, Any] = {"series_checked": 0, "chapters_stored": 0, "notified": 0}
    total = await ctx.chapters.count_due(started)

    async def check(series: TrackedSeries) -> None:
        chapters: list[SourceChapter] = []
        offset: int | None = 0
        try:
            while offset is not None:
                # MangaDex refuses any page reaching past its result window (a 400).
                limit = min(FEED_PAGE_SIZE, RESULT_WINDOW - offset)
                page = await client.chapter_feed(
                    series.mangadex_id, offset=offset, limit=limit, languages=("en",)
                )
                chapters.extend(page.items)
                offset = page.next_offset
                if offset is not None and offset >= RESULT_WINDOW:
                    log.warning(
                        "mangadex_chapters: %s has more than %d chapters; the rest are not read",
                        series.title,
                        RESULT_WINDOW,
                    )
                    offset = None
        except SourceRejected as exc:
            if exc.status != 404:
                raise
            log.warning("mangadex_chapters: %s (%s) is gone from MangaDex", series.title, exc)
            chapters = []
        result = await ctx.chapters.store_chapters(series, chapters)
        counts["series_checked"] += 1
        counts["chapters_stored"] += result.stored
        counts["notified"] += result.notified
        ctx.report(counts["series_checked"], total)

    batch_size = max(ctx.workers * 8, 16)
    async with WorkerPool(check, workers=ctx.workers, queue_size=batch_size) as pool:
        while True:
            due = await ctx.chapters.due_for_chapter_check(started, limit=batch_size)
            if not due:
                break
            for series in due:
                await pool.put(series)
            await pool.join()  # the batch is marked checked before the next is read
            await checkpoint(started.isoformat(), counts)
    return JobResult(cursor=None, counts=counts)


async def anilist_enrich(ctx: JobContext, state: JobState, checkpoint: Checkpoint) -> JobResult:
    """Every stored series by id: by its AniList id (MangaDex's ``links.al`` lands
    there on import) in batches of 50, else by an exact normalized-title match."""
    client = ctx.need_anilist()
    after = int(state.cursor or 0)
    counts: dict[str, Any] = {"series_seen": 0, "series_enriched": 0, "matched_by_title": 0}
    while True:
        batch = await ctx.chapters.enrichment_batch(after, ENRICH_BATCH)
        if not batch:
            break
        by_id = {t.anilist_id: t for t in batch if t.anilist_id is not None}
        found = {m.record.anilist_id: m for m in await client.media(list(by_id))} if by_id else {}
        for target in batch:
            match = found.get(target.anilist_id) if target.anilist_id is not None else None
            if match is None and target.anilist_id is None:
                # Runs of spaces would only narrow the source's own search.
                match = await client.find(" ".join(target.title.split()))
                counts["matched_by_title"] += match is not None
            if match is not None and await ctx.chapters.apply_enrichment(target.id, match):
                counts["series_enriched"] += 1
        counts["series_seen"] += len(batch)
        after = batch[-1].id
        await checkpoint(str(after), counts)
        ctx.report(counts["series_seen"], None)
    return JobResult(cursor=None, counts=counts)


JOBS: dict[JobType, JobFunc] = {
    "mangadex_import": mangadex_import,
    "mangadex_poll": mangadex_poll,
    "mangadex_chapters": mangadex_chapters,
    "anilist_enrich": anilist_enrich,
}
