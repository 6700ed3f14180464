"""The MangaDex and AniList clients against the fake sources over real sockets:
paging, filters, GraphQL variables, and the retry rules (asserted on what the fake
recorded)."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mangahub.sources.anilist import MEDIA_PAGE_QUERY, AniListClient
from mangahub.sources.http import RetryPolicy, retry_after_seconds
from mangahub.sources.mangadex import MangaDexClient
from mangahub.sources.models import SourceRejected, SourceUnavailable
from tests.fakes.sources import FakeSources
from tests.sources.conftest import FAST_RETRY

MOB_PSYCHO = "736a2bf0-f875-4b52-a7b4-e8c40505b68a"
NAGATORO = "d86cf65b-5f6c-437d-a0af-19a31f94ec55"


# --- MangaDex: paging and filters -------------------------------------------------------


async def test_list_manga_pages_through_everything_oldest_first(
    mangadex: MangaDexClient, fake: FakeSources
) -> None:
    seen: list[str] = []
    created: list[datetime] = []
    offset: int | None = 0
    while offset is not None:
        page = await mangadex.list_manga(offset=offset, limit=40)
        seen += [m.source_id for m in page.items]
        created += [m.created_at for m in page.items if m.created_at is not None]
        offset = page.next_offset
    assert sorted(seen) == sorted(fake.manga_ids) and len(seen) == len(set(seen)) == 132
    assert created == sorted(created)
    first = fake.requests_to("mangadex")[0]
    assert first.param("order[createdAt]") == "asc"
    assert {v for k, v in first.query if k == "includes[]"} == {"author", "artist", "cover_art"}
    assert [r.param("offset") for r in fake.requests_to("mangadex")] == ["0", "40", "80", "120"]


async def test_list_manga_created_since(mangadex: MangaDexClient) -> None:
    everything = await mangadex.list_manga(limit=100)
    since = datetime(2024, 1, 15, 2, 49, 24, tzinfo=UTC)  # Oh! Dangun's createdAt
    page = await mangadex.list_manga(limit=100, created_since=since)
    assert 0 < page.total < everything.total
    assert all(m.created_at is not None and m.created_at >= since for m in page.items)
    assert page.items[0].record.title == "Oh! Dangun"


async def test_search_and_get_manga(mangadex: MangaDexClient, fake: FakeSources) -> None:
    page = await mangadex.search("NAGATORO", limit=5)
    assert [m.source_id for m in page.items] == [NAGATORO]
    assert page.total == 1 and page.next_offset is None
    assert fake.requests_to("mangadex")[-1].param("title") == "NAGATORO"
    manga = await mangadex.get_manga(NAGATORO)
    assert manga.record.title == "Ijiranaide, Nagatoro-san"
    # the cover art expansion the fake holds for list entries arrives with the entity too
    dandadan = await mangadex.get_manga("68112dc1-2b80-4f20-beb8-2f2a8716a430")
    assert dandadan.record.cover_url is not None


async def test_search_pages_by_offset(mangadex: MangaDexClient) -> None:
    whole = await mangadex.search("a", limit=30)
    assert whole.total > 30
    second = await mangadex.search("a", limit=10, offset=10)
    assert [m.source_id for m in second.items] == [m.source_id for m in whole.items[10:20]]


async def test_chapter_feed_english_by_number(mangadex: MangaDexClient, fake: FakeSources) -> None:
    first = await mangadex.chapter_feed(MOB_PSYCHO, limit=20)
    rest = await mangadex.chapter_feed(MOB_PSYCHO, offset=20, limit=20)
    assert first.total == rest.total == 28  # the recorded English chapters
    numbers = [c.number for c in (*first.items, *rest.items)]
    assert len(numbers) == 28 and numbers == sorted(numbers)  # type: ignore[type-var]
    assert all(c.language == "en" for c in first.items)
    assert first.next_offset == 20 and rest.next_offset is None
    request = fake.requests_to("mangadex")[0]
    assert request.param("translatedLanguage[]") == "en"
    assert request.param("order[chapter]") == "asc"
    assert request.param("includes[]") == "scanlation_group"


async def test_added_chapters_show_up_in_the_feed(
    mangadex: MangaDexClient, fake: FakeSources
) -> None:
    before = await mangadex.chapter_feed(NAGATORO, limit=10)
    assert before.total == 0
    template = (await _raw_feed_entry(fake))[0]
    template["id"] = "0e4d2b8c-7a1f-4c5e-9f3a-2b6d8c1e4f70"
    template["attributes"]["chapter"] = "10.5"
    template["relationships"] = [{"id": NAGATORO, "type": "manga"}]
    fake.add_chapters(NAGATORO, [template])
    after = await mangadex.chapter_feed(NAGATORO, limit=10)
    assert [(c.source_id, c.number) for c in after.items] == [(template["id"], 10.5)]


async def _raw_feed_entry(fake: FakeSources) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as raw:
        r = await raw.get(f"{fake.mangadex_url}/manga/{MOB_PSYCHO}/feed", params={"limit": 1})
        data: list[dict[str, Any]] = r.json()["data"]
        return data


async def test_not_a_mangadex_id_is_rejected_without_a_request(
    mangadex: MangaDexClient, fake: FakeSources
) -> None:
    with pytest.raises(SourceRejected) as caught:
        await mangadex.get_manga("../auth/login")
    assert caught.value.status == 400
    assert fake.requests == []


# --- retries ---------------------------------------------------------------------------------


async def test_429_with_retry_after_is_waited_out(
    mangadex: MangaDexClient, fake: FakeSources
) -> None:
    fake.fail_next("mangadex", 429, headers={"Retry-After": "1"})
    page = await mangadex.search("nagatoro", limit=5)
    assert page.total == 1
    first, second = fake.requests_to("mangadex")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.95  # the source's wait, not the 10 ms backoff


async def test_x_ratelimit_retry_after_as_unix_time(fake: FakeSources) -> None:
    # Read as seconds, the timestamp would mean the 30 s cap; as a time, 1-2 s.
    retry = RetryPolicy(base_delay=0.01, max_delay=30)
    async with MangaDexClient(fake.mangadex_url, retry=retry) as client:
        when = str(int(time.time()) + 2)
        fake.fail_next("mangadex", 429, headers={"X-RateLimit-Retry-After": when})
        await client.get_manga(NAGATORO)
    first, second = fake.requests_to("mangadex")
    assert second.status == 200 and 0.9 <= second.at - first.at < 10


async def test_x_ratelimit_retry_after_as_http_date(
    mangadex: MangaDexClient, fake: FakeSources
) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    fake.fail_next("mangadex", 429, headers={"X-RateLimit-Retry-After": when})
    await mangadex.get_manga(NAGATORO)
    first, second = fake.requests_to("mangadex")
    assert second.status == 200 and second.at - first.at >= 0.9  # whole seconds in the date


async def test_a_burst_of_500s_is_survived(mangadex: MangaDexClient, fake: FakeSources) -> None:
    fake.fail_next("mangadex", 503, count=2)
    fake.fail_next("mangadex", 500, count=2)
    manga = await mangadex.get_manga(NAGATORO)
    assert manga.source_id == NAGATORO
    assert [r.status for r in fake.requests_to("mangadex")] == [503, 503, 500, 500, 200]


async def test_a_dropped_connection_is_retried(mangadex: MangaDexClient, fake: FakeSources) -> None:
    fake.drop_next("mangadex", 2)
    page = await mangadex.list_manga(limit=5)
    assert len(page.items) == 5
    assert [r.status for r in fake.requests_to("mangadex")] == [0, 0, 200]


async def test_a_400_is_not_retried(mangadex: MangaDexClient, fake: FakeSources) -> None:
    with pytest.raises(SourceRejected) as caught:
        await mangadex.list_manga(offset=9_950, limit=100)  # past MangaDex's result window
    assert caught.value.status == 400
    assert "Result window is too large" in str(caught.value)
    fake.fail_next("mangadex", 404)
    with pytest.raises(SourceRejected):
        await mangadex.get_manga(NAGATORO)
    assert [r.status for r in fake.requests_to("mangadex")] == [400, 404]


async def test_gives_up_after_five_attempts(mangadex: MangaDexClient, fake: FakeSources) -> None:
    fake.fail_next("mangadex", 502, count=10)
    with pytest.raises(SourceUnavailable, match="HTTP 502 after 5 attempt"):
        await mangadex.search("x", limit=1)
    assert len(fake.requests_to("mangadex")) == 5


async def test_an_unreachable_source_is_unavailable_and_marked() -> None:
    # A port nobody listens on: connection refused, every attempt.
    async with MangaDexClient("http://127.0.0.1:9", retry=RetryPolicy(2, 0.01)) as client:
        with pytest.raises(SourceUnavailable, match="ConnectError"):
            await client.search("x", limit=1)
        assert client.health.unreachable_within(60)


async def test_timeouts_are_retried_then_unavailable(fake: FakeSources) -> None:
    fake.delay("mangadex", 0.5)
    retry = RetryPolicy(max_attempts=2, base_delay=0.01)
    async with MangaDexClient(fake.mangadex_url, timeout=0.1, retry=retry) as client:
        with pytest.raises(SourceUnavailable, match="Timeout"):
            await client.get_manga(NAGATORO)
    # the fake records a request when it answers, after its delay
    await _until(lambda: len(fake.requests_to("mangadex")) >= 2)
    assert len(fake.requests_to("mangadex")) == 2


async def _until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


# --- AniList ---------------------------------------------------------------------------------


async def test_anilist_search_sends_variables_not_text(
    anilist: AniListClient, fake: FakeSources
) -> None:
    hostile = 'fate") { id } } #'
    page = await anilist.search(hostile, limit=5)
    assert page.items == ()
    body = fake.requests_to("anilist")[0].body
    assert body["query"] == MEDIA_PAGE_QUERY and hostile not in body["query"]
    assert body["variables"]["search"] == hostile
    assert "type: MANGA" in body["query"]


async def test_anilist_search_pages(anilist: AniListClient, fake: FakeSources) -> None:
    whole = await anilist.search("fate", limit=30)
    assert whole.total == 21 and len(whole.items) == 21 and whole.next_offset is None
    assert all(m.source == "anilist" for m in whole.items)
    first = await anilist.search("fate", limit=10)
    third = await anilist.search("fate", limit=10, offset=20)
    assert first.next_offset == 10 and third.next_offset is None
    assert [m.source_id for m in (*first.items, *third.items)] == [
        m.source_id for m in (*whole.items[:10], *whole.items[20:])
    ]
    pages = [r.body["variables"] for r in fake.requests_to("anilist")[1:]]
    assert [(v["page"], v["perPage"]) for v in pages] == [(1, 10), (3, 10)]


async def test_anilist_offset_between_pages(anilist: AniListClient) -> None:
    whole = await anilist.search("fate", limit=30)
    shifted = await anilist.search("fate", limit=10, offset=5)
    assert [m.source_id for m in shifted.items] == [m.source_id for m in whole.items[5:15]]


async def test_anilist_media_by_ids_in_chunks_of_50(
    anilist: AniListClient, fake: FakeSources
) -> None:
    ids = [105778, 55191, *range(1, 60)]  # two real ones among unknown ids
    found = await anilist.media(ids)
    assert sorted(m.record.anilist_id for m in found) == [55191, 105778]  # type: ignore[type-var]
    chunks = [r.body["variables"]["ids"] for r in fake.requests_to("anilist")]
    assert [len(c) for c in chunks] == [50, 11]


async def test_anilist_find_matches_titles_exactly(anilist: AniListClient) -> None:
    found = await anilist.find("FATE/ZERO")
    assert found is not None and found.record.anilist_id == 55191
    by_synonym = await anilist.find("Shingeki no Kyojin")
    assert by_synonym is not None and by_synonym.record.title == "Attack on Titan"
    assert await anilist.find("Fate/Zer") is None  # a substring is not the series
    assert await anilist.find("!!!") is None


async def test_anilist_429_is_waited_out(anilist: AniListClient, fake: FakeSources) -> None:
    fake.fail_next("anilist", 429, headers={"Retry-After": "1"})
    page = await anilist.search("fate", limit=5)
    assert len(page.items) == 5
    first, second = fake.requests_to("anilist")
    assert (first.status, second.status) == (429, 200) and second.at - first.at >= 0.95


async def test_anilist_graphql_error_is_rejected(anilist: AniListClient, fake: FakeSources) -> None:
    fake.fail_next("anilist", 400)
    with pytest.raises(SourceRejected):
        await anilist.search("fate", limit=5)
    assert len(fake.requests_to("anilist")) == 1


# --- pieces ------------------------------------------------------------------------------------


def test_retry_after_forms() -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After": "60"})) == 60.0
    assert retry_after_seconds(httpx.Headers({"X-RateLimit-Retry-After": "2.5"})) == 2.5
    date = "Thu, 17 Apr 2025 11:43:28 GMT"
    now = email.utils.parsedate_to_datetime(date).timestamp()
    assert retry_after_seconds(httpx.Headers({"Retry-After": date}), now=now - 30) == 30.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": date}), now=now + 30) == 0.0
    unix = httpx.Headers({"X-RateLimit-Retry-After": "1698723860"})  # MangaDex: a Unix time
    assert retry_after_seconds(unix, now=1698723850) == 10.0
    assert retry_after_seconds(unix, now=1698723870) == 0.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"})) is None
    assert retry_after_seconds(httpx.Headers({})) is None


def test_backoff_is_full_jitter_within_the_cap() -> None:
    policy = RetryPolicy()
    for failures, ceiling in ((1, 1.0), (2, 2.0), (5, 16.0), (6, 32.0), (9, 32.0)):
        waits = [policy.backoff(failures) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2  # spread over the range, not fixed
    assert policy.honour(120) == 32.0 and policy.honour(-1) == 0.0
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_fast_retry_keeps_the_attempt_count() -> None:
    assert FAST_RETRY.max_attempts == 5
