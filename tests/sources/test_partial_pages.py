"""One entry a parser cannot read is skipped and counted, not fatal to its page: a sync
job would otherwise stop at the same page on every run."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import orjson

from mangahub.sources.anilist import AniListClient
from mangahub.sources.mangadex import MangaDexClient
from mangahub.sources.models import SourcePage
from tests.fakes.sources import DATA


def _serving(body: Any) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, content=orjson.dumps(body)))


async def test_a_mangadex_entity_that_does_not_parse_is_skipped_and_counted() -> None:
    body = orjson.loads((DATA / "mangadex/manga_list_limit100.json").read_bytes())
    broken = copy.deepcopy(body)
    broken["data"][3]["attributes"] = "not an object"
    broken["data"][7] = None
    async with MangaDexClient("http://mangadex.test", transport=_serving(broken)) as client:
        page = await client.list_manga(offset=0, limit=100)
    assert (len(page.items), page.skipped) == (98, 2)
    kept = {m.source_id for m in page.items}
    assert body["data"][3]["id"] not in kept and body["data"][4]["id"] in kept
    # Paging counts the skipped entries as read: the next page starts after all 100.
    assert page.next_offset == 100


async def test_null_and_unparseable_anilist_media_are_skipped() -> None:
    body = orjson.loads((DATA / "anilist/page_popular_manga_2022.response.json").read_bytes())
    media = body["data"]["Page"]["media"]
    media[0] = None
    media[1]["title"] = 42
    async with AniListClient("http://anilist.test", transport=_serving(body)) as client:
        page = await client.search("popular", limit=50)
    assert page.skipped == 2
    assert len(page.items) == len(media) - 2


def test_next_offset_counts_skipped_entries() -> None:
    page: SourcePage[int] = SourcePage(items=(), offset=100, limit=100, total=250, skipped=100)
    assert page.next_offset == 200
    last: SourcePage[int] = SourcePage(items=(1,), offset=200, limit=100, total=250, skipped=49)
    assert last.next_offset is None
