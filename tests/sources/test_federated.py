"""Federated search over a local catalog of the 500 MangaDex series earlier releases
bundled (see the ``legacy_catalog`` fixture) and the run's cache, with MangaDex and
AniList served by the fake over real sockets."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from mangahub.app import Runtime, build_runtime
from mangahub.domain.enums import SourceStatus
from mangahub.domain.errors import ValidationFailed
from mangahub.domain.schemas import FederatedResults
from mangahub.http.app import create_app
from mangahub.services.catalog import CatalogService
from mangahub.services.federated import FederatedSearch
from mangahub.sources.http import RetryPolicy
from mangahub.sources.mangadex import MangaDexClient
from tests.conftest import Backend
from tests.fakes.sources import FakeSources
from tests.sources.conftest import FAST_RETRY, ScopedCache

DANDADAN = "68112dc1-2b80-4f20-beb8-2f2a8716a430"  # bundled locally and on MangaDex
NAGATORO = "d86cf65b-5f6c-437d-a0af-19a31f94ec55"  # MangaDex, links.al = 100664
ORV = "9a414441-bbad-43f1-a3a7-dc262ca790a3"  # bundled as "Jeonjijeok Dokja Sijeom"


def statuses(found: FederatedResults) -> dict[str, SourceStatus]:
    return {report.name: report.status for report in found.sources}


async def test_a_series_both_local_and_on_mangadex_appears_once_local_first(
    federated: FederatedSearch, legacy_catalog: CatalogService
) -> None:
    found = await federated.search("dandadan", limit=10)
    assert statuses(found) == {"local": "ok", "mangadex": "ok", "anilist": "ok"}
    mangadex_report = next(r for r in found.sources if r.name == "mangadex")
    assert mangadex_report.results == 1  # MangaDex did list it...
    [hit] = [h for h in found.results if h.mangadex_id == DANDADAN]  # ...but it shows once
    assert hit.source == "local" and hit.id is not None
    assert found.results[0] == hit
    assert found.results[0].id == (await legacy_catalog.get_manga(hit.id)).id


async def test_a_series_on_mangadex_and_anilist_appears_once(federated: FederatedSearch) -> None:
    found = await federated.search("nagatoro", limit=10)
    assert statuses(found) == {"local": "ok", "mangadex": "ok", "anilist": "ok"}
    assert [r.results for r in found.sources] == [0, 1, 1]
    [hit] = found.results
    assert (hit.source, hit.mangadex_id, hit.anilist_id) == ("mangadex", NAGATORO, 100664)
    assert hit.title == "Ijiranaide, Nagatoro-san" and hit.id is None


async def test_an_external_hit_for_a_local_series_off_the_page_is_the_local_series(
    federated: FederatedSearch,
) -> None:
    # The local search does not find "omniscient" (the bundled title is the Korean
    # romanization); MangaDex's hit carries the id the bundled series has, and
    # AniList's hit is the same series by AniList id (MangaDex's links.al).
    found = await federated.search("omniscient", limit=10)
    assert [r.results for r in found.sources] == [0, 1, 1]
    [hit] = found.results
    assert (hit.source, hit.mangadex_id, hit.title) == ("local", ORV, "Jeonjijeok Dokja Sijeom")
    assert hit.anilist_id is None  # the local series is shown as it is, not enriched


async def test_same_title_in_one_catalog_is_not_merged(federated: FederatedSearch) -> None:
    found = await federated.search("fate", limit=20, sources=["anilist"])
    ids = [h.anilist_id for h in found.results]
    assert 50006 in ids and 86753 in ids  # two AniList series titled "Fate/strange Fake"
    assert len(ids) == len(set(ids))
    # adult entries (isAdult) are not part of a general search
    assert 147359 not in ids and 133235 not in ids


async def test_a_hanging_source_still_returns_the_others(
    federated: FederatedSearch, fake: FakeSources
) -> None:
    fake.delay("anilist", 30)
    started = time.monotonic()
    found = await federated.search("nagatoro", limit=10, timeout=2.0)
    waited = time.monotonic() - started
    assert statuses(found) == {"local": "ok", "mangadex": "ok", "anilist": "timeout"}
    assert [h.mangadex_id for h in found.results] == [NAGATORO]
    report = next(r for r in found.sources if r.name == "anilist")
    assert report.results == 0 and report.error is not None
    assert waited < 25  # it did not wait for the hanging source's answer


async def test_the_callers_timeout_caps_every_deadline(
    federated: FederatedSearch, fake: FakeSources
) -> None:
    fake.delay("mangadex", 30)
    fake.delay("anilist", 30)
    found = await federated.search("nagatoro", limit=10, timeout=0.3)
    assert statuses(found) == {"local": "ok", "mangadex": "timeout", "anilist": "timeout"}
    assert found.results == []
    none_left = await federated.search("nagatoro", limit=10, timeout=0)
    assert statuses(none_left)["mangadex"] == "timeout"


@pytest.mark.parametrize("status", [500, 429])
async def test_a_failing_source_is_reported_and_skipped(
    federated: FederatedSearch, fake: FakeSources, status: int
) -> None:
    fake.fail_next("mangadex", status, count=50)
    found = await federated.search("nagatoro", limit=10)
    assert statuses(found) == {"local": "ok", "mangadex": "error", "anilist": "ok"}
    report = next(r for r in found.sources if r.name == "mangadex")
    assert f"HTTP {status} after 5 attempt" in (report.error or "")
    [hit] = found.results
    assert (hit.source, hit.anilist_id) == ("anilist", 100664)
    assert len(fake.requests_to("mangadex")) == 5


async def test_a_second_identical_query_is_served_from_cache(
    federated: FederatedSearch, fake: FakeSources
) -> None:
    first = await federated.search("Attack on Titan", limit=10)
    assert statuses(first) == {"local": "ok", "mangadex": "ok", "anilist": "ok"}
    asked = len(fake.requests)
    assert asked == 2
    again = await federated.search("  attack ON titan ", limit=10)
    assert statuses(again) == {"local": "ok", "mangadex": "cached", "anilist": "cached"}
    assert len(fake.requests) == asked  # the sources were not asked again
    assert again.results == first.results and again.total == first.total
    other_page = await federated.search("attack on titan", limit=10, offset=10)
    assert statuses(other_page)["mangadex"] == "ok"  # a different page is a different key


async def test_failures_are_not_cached(federated: FederatedSearch, fake: FakeSources) -> None:
    fake.fail_next("anilist", 500, count=5)
    failed = await federated.search("jigokuraku", limit=5)
    assert statuses(failed)["anilist"] == "error"
    again = await federated.search("jigokuraku", limit=5)
    assert statuses(again) == {"local": "ok", "mangadex": "cached", "anilist": "ok"}


async def test_unknown_and_disabled_sources(runtime: Runtime, scoped_cache: ScopedCache) -> None:
    federated = FederatedSearch(runtime.catalog, scoped_cache, [])
    with pytest.raises(ValidationFailed, match="unknown source"):
        await federated.search("one", sources=["local", "myanimelist"])
    found = await federated.search("one", limit=5, sources=["LOCAL", "anilist", "mangadex"])
    assert statuses(found) == {"local": "ok", "anilist": "disabled", "mangadex": "disabled"}
    assert found.results and all(h.source == "local" for h in found.results)
    everything = await federated.search("one", limit=5)
    assert [r.name for r in everything.sources] == ["local"]  # disabled ones only when asked


async def test_bad_arguments(federated: FederatedSearch) -> None:
    for kwargs in ({"limit": 0}, {"limit": 101}, {"offset": -1}):
        with pytest.raises(ValidationFailed):
            await federated.search("one", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed):
        await federated.search("x" * 201)
    with pytest.raises(ValidationFailed, match="need a query"):
        await federated.search("  ", sources=["mangadex"])


async def test_a_blank_query_browses_the_local_catalog_only(
    federated: FederatedSearch, fake: FakeSources
) -> None:
    found = await federated.search("", limit=5)
    assert [r.name for r in found.sources] == ["local"] and len(found.results) == 5
    assert fake.requests == []


async def test_an_unreachable_source_is_skipped_for_a_while(
    runtime: Runtime, scoped_cache: ScopedCache
) -> None:
    retry = RetryPolicy(base_delay=1.0)  # the real backoff: the search must not wait it out
    async with MangaDexClient("http://127.0.0.1:9", retry=retry) as offline:
        federated = FederatedSearch(runtime.catalog, scoped_cache, [offline], source_timeout=20)
        started = time.monotonic()
        first = await federated.search("one", limit=5)
        assert time.monotonic() - started < 10  # ended at the refused connection
        second = await federated.search("one piece", limit=5)
    assert [(r.name, r.status, r.error) for r in first.sources][1:] == [
        ("mangadex", "error", "unreachable")
    ]
    assert [(r.name, r.status, r.error) for r in second.sources][1:] == [
        ("mangadex", "error", "recently unreachable")
    ]
    assert first.results and second.results


# --- wiring: settings → runtime → HTTP --------------------------------------------------


@pytest.fixture
async def wired(
    backend: Backend, fake: FakeSources, legacy_catalog_url: str
) -> AsyncIterator[Runtime]:
    """A second runtime, on the legacy catalog's database, whose settings point at the fake."""
    settings = backend.settings(
        database_url=legacy_catalog_url,
        mangadex_url=fake.mangadex_url,
        anilist_url=fake.anilist_url,
        anilist_enabled=True,
        anilist_requests_per_minute=6000,
        mangadex_requests_per_second=100,
    )
    async with build_runtime(settings, bootstrap=False) as runtime:
        yield runtime


async def test_runtime_builds_federated_search_from_settings(wired: Runtime) -> None:
    assert wired.sources.mangadex is not None and wired.sources.anilist is not None
    found = await wired.federated.search("jigokuraku", limit=5)
    assert statuses(found) in (
        {"local": "ok", "mangadex": "ok", "anilist": "ok"},
        {"local": "ok", "mangadex": "cached", "anilist": "cached"},  # Redis outlives a run
    )
    [hit] = found.results
    assert (hit.source, hit.anilist_id) == ("mangadex", 100994)


async def test_federated_search_over_http(wired: Runtime, fake: FakeSources) -> None:
    transport = httpx.ASGITransport(app=create_app(wired), client=("127.0.0.1", 50001))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await client.get("/api/manga/federated", params={"q": "nagatoro", "limit": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [h["mangadex_id"] for h in body["results"]] == [NAGATORO]
        assert {s["name"] for s in body["sources"]} == {"local", "mangadex", "anilist"}
        r = await client.get(
            "/api/manga/federated", params={"q": "nagatoro", "sources": "local, anilist"}
        )
        assert [s["name"] for s in r.json()["sources"]] == ["local", "anilist"]
        r = await client.get("/api/manga/federated", params={"q": "x", "sources": "nope"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
        r = await client.get("/api/manga/federated")
        assert r.status_code == 422
        assert (await client.get("/api/manga/1")).status_code == 200  # not shadowed


async def test_sources_off_by_configuration(backend: Backend) -> None:
    settings = backend.settings(mangadex_url="", anilist_enabled=False)
    async with build_runtime(settings, bootstrap=False) as runtime:
        assert runtime.sources.mangadex is None and runtime.sources.anilist is None
        found = await runtime.federated.search("one", limit=5, sources=["mangadex", "local"])
        assert statuses(found) == {"mangadex": "disabled", "local": "ok"}
    disabled = backend.settings(mangadex_enabled=False)
    async with build_runtime(disabled, bootstrap=False) as runtime:
        assert runtime.sources.enabled == []


def test_fast_retry_is_used() -> None:
    assert FAST_RETRY.base_delay < 0.1


async def test_a_query_with_control_characters_is_a_validation_error(
    federated: FederatedSearch, fake: FakeSources
) -> None:
    # A NUL cannot be stored or compared in PostgreSQL text: refused up front, for
    # every source alike, instead of failing deep in the local search.
    for query in ("naga\x00toro", "naga\ntoro\x1b"):
        with pytest.raises(ValidationFailed, match="control characters"):
            await federated.search(query, limit=3)
    assert fake.requests_to("mangadex") == []
