"""Search that forgives, on both storage paths: each normalization and typo class,
Japanese script, authors in either order, ranking (main series before spin-offs),
an index that follows every writer, and browsing (genres, formats, statuses, the
unknown-genre error, format and year filters)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from mangahub.app import Runtime
from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaFormat, MangaStatus
from mangahub.readmodels.catalog import publish_catalog_changed
from mangahub.services.catalog.fold import compact, fold, loose
from mangahub.services.catalog.index import Entry, SearchIndex
from mangahub.services.catalog.live_index import STAMP_INTERVAL
from mangahub.services.catalog.params import close_names
from mangahub.storage.models import Manga
from tests.conftest import UserSession
from tests.test_catalog import assert_error, create, tag, titles


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


async def search(client: httpx.AsyncClient, q: str, **params: Any) -> list[int]:
    return ids(await client.get("/api/manga", params={"q": q, **params}))


async def eventually(find: Callable[[], Awaitable[list[int]]]) -> list[int]:
    """What ``find`` answers once it answers something, within STAMP_INTERVAL and a
    margin (a writer that bypasses the service is seen on the next stamp check)."""
    deadline = time.monotonic() + STAMP_INTERVAL + 2.0
    while not (found := await find()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return found


def kana_word() -> str:
    """Random katakana no other series has."""
    letters = "アイウエオカキクケコサシスセソタチツテトナニヌネノ"
    return "".join(random.choice(letters) for _ in range(8))


def typo(word: str, position: int) -> str:
    """``word`` with the letter at ``position`` replaced."""
    replacement = "q" if word[position] != "q" else "w"
    return word[:position] + replacement + word[position + 1 :]


async def imported(runtime: Runtime, title: str, **fields: Any) -> int:
    values: dict[str, Any] = {
        "title": title,
        "status": MangaStatus.ONGOING,
        "mangadex_id": str(uuid.uuid4()),
    }
    assert await runtime.catalog.import_series([SeriesRecord(**(values | fields))]) == 1
    (found,) = await runtime.catalog.find_by_source_ids([values["mangadex_id"]], [])
    return found.id


# --- folding (one function, no storage) -----------------------------------------------


@pytest.mark.parametrize(
    ("spellings", "folded"),
    [
        (["SPY×FAMILY", "spy x family", "Spy X Family"], "spy x family"),
        (["Dr. STONE", "dr stone", "DR.STONE!"], "dr stone"),
        (["Haikyuu!!", "haikyu", "HAIKYU!!"], "haikyu"),
        (["ＯＮＥ　ＰＩＥＣＥ", "one piece", "One-Piece"], "one piece"),  # full width
        (["Pokémon", "POKEMON", "pokémon"], "pokemon"),
        (["Sōsō no Frieren", "Sousou no Frieren", "SOUSOU NO FRIEREN"], "soso no frieren"),
        (["JoJo's", "jojos", "JOJO’S"], "jojos"),
        (["はいきゅー", "ハイキュー!!", "ﾊｲｷｭｰ"], "ハイキュー"),  # hiragana, half width
    ],
)
def test_spellings_fold_together(spellings: list[str], folded: str) -> None:
    assert {loose(s) for s in spellings} == {folded}


def test_long_vowels_are_only_loosely_equal() -> None:
    assert fold("Haikyuu!!") == "haikyuu" and loose("Haikyuu!!") == "haikyu"
    assert fold("Onee-san") == "onee san"  # a whole-word "one" matches it only loosely


def test_spacing_and_punctuation_do_not_matter_in_the_compact_form() -> None:
    assert {compact(s) for s in ("SPY×FAMILY", "spy x family", "spyxfamily")} == {"spyxfamily"}
    assert compact("Dr. STONE") == compact("drstone") == "drstone"


def test_close_names_for_an_unknown_one() -> None:
    names = ["Action", "Slice of Life", "Shounen Ai", "Sports", "Romance"]
    assert close_names("slice of lfe", names)[0] == "Slice of Life"
    assert close_names("shonen", names)[0] == "Shounen Ai"
    assert close_names("zzzzzz", names) == []


def test_index_forgets_replaced_and_removed_series() -> None:
    index = SearchIndex()
    index.put([Entry(1, "Old Name"), Entry(2, "Other")])
    index.put([Entry(1, "New Name")])
    assert index.search("old name", 10) == []
    assert index.search("new name", 10) == [1]
    index.remove(1)
    assert index.search("new name", 10) == []
    assert len(index) == 1


# --- normalization classes, end to end --------------------------------------------------


async def test_spacing_punctuation_and_symbols(client: httpx.AsyncClient) -> None:
    found = (await client.get("/api/manga", params={"q": "SPY×FAMILY"})).json()["data"]
    assert found[0]["title"] == "SPY×FAMILY"
    spy = found[0]["id"]
    for q in ("spy x family", "spyxfamily", "Spy×Family", "SPY X FAMILY", "spy-x-family"):
        assert (await search(client, q))[:1] == [spy], q


async def test_width_case_and_long_vowels(client: httpx.AsyncClient) -> None:
    for q in ("Haikyuu!!", "haikyu", "HAIKYUU", "ｈａｉｋｙｕ"):
        assert titles(await client.get("/api/manga", params={"q": q}))[:1] == ["Haikyu!!"], q
    for q in ("ＯＮＥ　ＰＩＥＣＥ", "onepiece", "One-Piece"):
        assert titles(await client.get("/api/manga", params={"q": q}))[:1] == ["ONE PIECE"], q


async def test_dotted_titles(client: httpx.AsyncClient, admin: UserSession) -> None:
    word = tag()
    created = await create(client, admin, title=f"Dr. STONE {word}")
    for q in (f"dr stone {word}", f"drstone{word}", f"DR.STONE {word.upper()}"):
        assert (await search(client, q))[:1] == [created["id"]], q


async def test_one_and_two_letter_typos(client: httpx.AsyncClient, admin: UserSession) -> None:
    word = tag()
    created = await create(client, admin, title=f"Berserk {word}")
    one = typo(word, 5)
    two = typo(typo(word, 5), 9)
    swapped = word[:4] + word[5] + word[4] + word[6:]  # two letters swapped: one typo
    for q in (f"berserc {word}", f"berserk {one}", f"berserk {two}", f"berserk {swapped}"):
        assert (await search(client, q))[:1] == [created["id"]], q
    for q in ("one pice", "one peice", "onepiec"):
        assert titles(await client.get("/api/manga", params={"q": q}))[:1] == ["ONE PIECE"], q


async def test_three_typos_in_a_word_are_too_many(
    client: httpx.AsyncClient, admin: UserSession
) -> None:
    word = tag()
    await create(client, admin, title=f"Iron {word}")
    three = typo(typo(typo(word, 3), 7), 11)
    assert await search(client, three) == []
    assert await search(client, typo(typo(word, 3), 7)) != []


async def test_japanese_script(runtime: Runtime, client: httpx.AsyncClient) -> None:
    kana = kana_word()
    hiragana = "".join(chr(ord(c) - 0x60) for c in kana)
    series = await imported(runtime, f"Romaji {tag()}", alt_titles=(f"{kana}の巨人",))
    for q in (f"{kana}の巨人", f"{hiragana}の巨人", kana, f"{kana[2:]}の巨"):
        assert (await search(client, q))[:1] == [series], q


async def test_author_names_in_either_order(runtime: Runtime, client: httpx.AsyncClient) -> None:
    word = tag()
    series = await imported(runtime, f"Works {tag()}", authors=(f"Kentaro {word}",))
    for q in (f"Kentaro {word}", f"{word} Kentaro", f"{word}kentaro", f"kentaro {typo(word, 6)}"):
        assert (await search(client, q))[:1] == [series], q


async def test_the_other_languages_title(runtime: Runtime, client: httpx.AsyncClient) -> None:
    word = tag()
    series = await imported(runtime, f"Shingeki no {word}", alt_titles=(f"Attack on {word}",))
    assert (await search(client, f"attack on {word}"))[:1] == [series]
    assert (await search(client, f"shingeki no {word}"))[:1] == [series]


# --- ranking ---------------------------------------------------------------------------


async def test_main_series_before_spin_offs(runtime: Runtime, client: httpx.AsyncClient) -> None:
    word = tag()
    # The spin-offs are more popular than the main series: the exact title still wins.
    spin_offs = [
        await imported(runtime, f"{word} Saga: Side Story", popularity=90_000),
        await imported(runtime, f"{word} Saga Party", popularity=80_000),
    ]
    main = await imported(runtime, f"{word} Saga", popularity=50_000)
    for q in (f"{word} saga", f"{word}saga", f"{word.upper()} SAGA"):
        found = await search(client, q)
        assert found[0] == main and set(found[1:]) == set(spin_offs), q
    # A typo in the query: still the main series first.
    assert (await search(client, f"{typo(word, 4)} saga"))[0] == main
    assert titles(await client.get("/api/manga", params={"q": "one piece"}))[0] == "ONE PIECE"


async def test_popularity_orders_equal_matches(runtime: Runtime, client: httpx.AsyncClient) -> None:
    word = tag()
    quiet = await imported(runtime, f"{word} Chronicle", popularity=10)
    loud = await imported(runtime, f"{word} Chronicle", popularity=10_000)
    assert await search(client, f"{word} chronicle") == [loud, quiet]


# --- the index follows every writer -----------------------------------------------------


async def test_search_follows_edits_and_deletes(
    runtime: Runtime, client: httpx.AsyncClient, admin: UserSession
) -> None:
    old, new = tag(), tag()
    created = await create(client, admin, title=f"Before {old}")
    assert await search(client, f"before {old}") == [created["id"]]
    r = await client.patch(
        f"/api/manga/{created['id']}", json={"title": f"After {new}"}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    assert await search(client, f"before {old}") == []
    assert await search(client, f"after {new}") == [created["id"]]
    # A writer outside the service (a sync job, another process) publishes
    # catalog.changed after its commit, as every catalog writer does: search sees it.
    newest = tag()
    async with runtime.db.session() as s:
        await s.execute(
            update(Manga).where(Manga.id == created["id"]).values(title=f"Direct {newest}")
        )
    await publish_catalog_changed(runtime.bus, created["id"])
    assert await search(client, f"direct {newest}") == [created["id"]]
    deleted = await client.delete(f"/api/manga/{created['id']}", headers=admin.headers)
    assert deleted.status_code == 204
    assert await search(client, f"direct {newest}") == []


# --- browsing -----------------------------------------------------------------------------


async def test_unknown_genre_is_an_error_naming_close_ones(client: httpx.AsyncClient) -> None:
    for path, params in (
        ("/api/manga", {"genre": "slice of lfe"}),
        ("/api/manga/advanced-search", {"genres": "Action, slice of lfe"}),
    ):
        error = assert_error(await client.get(path, params=params), 422, "validation_error")
        (detail,) = error["details"]
        assert detail["field"] == "genres"
        assert "Slice of Life" in detail["close"] and "Slice of Life" in detail["message"]


async def test_unknown_status_and_format_are_errors(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/manga/advanced-search", params={"status": "finished"})
    assert "completed" in assert_error(r, 422, "validation_error")["details"][0]["message"]
    r = await client.get("/api/manga/advanced-search", params={"format": "comic"})
    assert "manhwa" in assert_error(r, 422, "validation_error")["details"][0]["message"]
    r = await client.get("/api/manga/advanced-search", params={"year": "1066"})
    assert_error(r, 422, "validation_error")


async def test_formats_and_statuses_are_listed(client: httpx.AsyncClient) -> None:
    formats = (await client.get("/api/formats")).json()
    assert formats == [f.value for f in MangaFormat]
    statuses = (await client.get("/api/statuses")).json()
    assert statuses == [s.value for s in MangaStatus]


async def test_format_and_year_filters_and_novels_only_when_asked(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    word = tag()
    novel = await imported(runtime, f"{word} Light Novel", year=2015)
    manhwa = await imported(runtime, f"{word} Webtoon", year=2018)
    async with runtime.db.session() as s:
        await s.execute(update(Manga).where(Manga.id == novel).values(format="novel"))
        await s.execute(update(Manga).where(Manga.id == manhwa).values(format="manhwa"))
    path = "/api/manga/advanced-search"
    assert await search(client, word) == [manhwa]
    assert ids(await client.get(path, params={"q": word, "format": "novel"})) == [novel]
    both = await client.get(path, params={"q": word, "format": "Novel, MANHWA"})
    assert sorted(ids(both)) == sorted([novel, manhwa])
    assert both.json()["filters"]["formats"] == ["novel", "manhwa"]
    assert ids(await client.get(path, params={"q": word, "year": 2018})) == [manhwa]
    assert ids(await client.get(path, params={"q": word, "year": 2015})) == []
    by_year = await client.get(path, params={"format": "manhwa", "year": 2018, "page_size": 100})
    assert manhwa in ids(by_year)
    assert all(m["format"] == "manhwa" for m in by_year.json()["data"])
