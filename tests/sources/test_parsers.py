"""The parsers on every recorded response we keep (tests/data/sources): each entity
parses, and spot checks pin the values a reader would see."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from mangahub.domain.enums import MangaStatus
from mangahub.sources.anilist import parse_media, strip_html
from mangahub.sources.mangadex import parse_chapter, parse_manga
from mangahub.sources.models import SourceParseError
from tests.fakes.sources import DATA

MANGA_LISTS = (
    "mangadex/manga_list_limit100.json",
    "mangadex/manga_list_includes_cover_art_limit32.json",
)
MOB_PSYCHO = "736a2bf0-f875-4b52-a7b4-e8c40505b68a"


def load(name: str) -> Any:
    return orjson.loads((DATA / name).read_bytes())


def manga_entities() -> list[dict[str, Any]]:
    return [m for name in MANGA_LISTS for m in load(name)["data"]] + [
        load("mangadex/manga_entity_nagatoro.json")["data"]
    ]


def by_id(entities: list[dict[str, Any]], entity_id: str) -> dict[str, Any]:
    return next(e for e in entities if e["id"] == entity_id)


def media_items() -> list[dict[str, Any]]:
    fate = load("anilist/page_search_fate_p1.response.json")["data"]["Page"]["media"]
    popular: list[dict[str, Any]] = load("anilist/page_popular_manga_2022.response.json")["data"][
        "Page"
    ]["media"]
    return [m for m in fate if m["type"] == "MANGA"] + popular


# --- MangaDex manga ----------------------------------------------------------------


def test_every_recorded_manga_parses() -> None:
    entities = manga_entities()
    parsed = [parse_manga(e) for e in entities]
    assert len(parsed) == 133
    for entity, manga in zip(entities, parsed, strict=True):
        assert manga.source == "mangadex"
        assert manga.source_id == entity["id"] == manga.record.mangadex_id
        assert manga.record.title in entity["attributes"]["title"].values()
        assert manga.record.status.value == entity["attributes"]["status"]
        assert manga.record.title not in manga.record.alt_titles
        assert manga.url == f"https://mangadex.org/title/{entity['id']}"
        assert manga.created_at is not None and manga.created_at.tzinfo is not None


def test_manga_with_expanded_cover_art() -> None:
    entities = load("mangadex/manga_list_includes_cover_art_limit32.json")["data"]
    manga = parse_manga(by_id(entities, "d9f7540f-4934-446a-923c-81619b5d3b53"))
    record = manga.record
    assert record.title == "Oh! Dangun"
    assert record.alt_titles == ("오!단군", "Legend of Dangun", "A Lenda de Dangun")
    assert record.status is MangaStatus.HIATUS
    assert record.year == 2024
    assert record.anilist_id == 180671  # links.al
    assert record.cover_url == (
        "https://uploads.mangadex.org/covers/d9f7540f-4934-446a-923c-81619b5d3b53/"
        "bd640e86-4d5f-487b-a252-0508f945f1d8.jpg"
    )
    # genre and theme tags; format tags ("Long Strip", "Web Comic") are not genres
    assert record.genres[:3] == ("Action", "Ghosts", "Animals")
    assert "Long Strip" not in record.genres and "Web Comic" not in record.genres
    assert record.description.startswith("There are animals that were abandoned by Dangun")
    assert manga.created_at == datetime(2024, 1, 15, 2, 49, 24, tzinfo=UTC)


def test_every_cover_art_relationship_becomes_a_cover_url() -> None:
    entities = load("mangadex/manga_list_includes_cover_art_limit32.json")["data"]
    for entity in entities:
        file_name = next(
            r["attributes"]["fileName"] for r in entity["relationships"] if r["type"] == "cover_art"
        )
        assert parse_manga(entity).record.cover_url == (
            f"https://uploads.mangadex.org/covers/{entity['id']}/{file_name}"
        )


def test_relationships_as_ids_only_give_no_cover_or_authors() -> None:
    entity = load("mangadex/manga_entity_nagatoro.json")["data"]
    record = parse_manga(entity).record
    assert record.title == "Ijiranaide, Nagatoro-san"  # ja-ro: there is no en title
    assert "Don't Toy With Me, Miss Nagatoro" in record.alt_titles
    assert "イジらないで、長瀞さん" in record.alt_titles
    assert record.cover_url is None and record.authors == ()
    assert record.anilist_id == 100664
    assert record.description.startswith("Our nameless—and spineless—hero")  # en preferred


def test_expanded_author_and_artist_are_credited_once() -> None:
    # No recorded list expands authors; the expansion is the author entity's own
    # attributes placed on the relationship, as includes[]=author returns them.
    entity = copy.deepcopy(load("mangadex/manga_entity_nagatoro.json")["data"])
    author = load("mangadex/author_entity_one.json")["data"]
    for rel in entity["relationships"]:
        if rel["type"] in ("author", "artist"):
            rel["attributes"] = author["attributes"]
    assert parse_manga(entity).record.authors == ("ONE",)


def test_missing_descriptions_and_chapter_counts() -> None:
    entities = load("mangadex/manga_list_limit100.json")["data"]
    celeb_lady = parse_manga(by_id(entities, "90542072-664e-4e56-b5eb-d7dc5ebfda53")).record
    assert celeb_lady.title == "Celeb Lady" and celeb_lady.description == ""
    titan = parse_manga(by_id(entities, "304ceac3-8cdb-4fe7-acf7-2b6ff7a60613")).record
    assert titan.title == "Attack on Titan"
    assert titan.total_chapters == 139 and titan.status is MangaStatus.COMPLETED
    assert titan.anilist_id == 53390
    # lastChapter "241.5": 241 whole chapters
    hana = parse_manga(by_id(entities, "4c2b7c0d-f97b-4044-b94a-638d99e92d24")).record
    assert hana.total_chapters == 241


def test_statuses_map_onto_the_catalogs() -> None:
    statuses = {parse_manga(e).record.status for e in manga_entities()}
    assert statuses == {MangaStatus.ONGOING, MangaStatus.COMPLETED, MangaStatus.HIATUS}
    entity = copy.deepcopy(manga_entities()[0])
    entity["attributes"]["status"] = "cancelled"
    assert parse_manga(entity).record.status is MangaStatus.CANCELLED


def test_a_broken_manga_entity_is_a_parse_error() -> None:
    with pytest.raises(SourceParseError):
        parse_manga({"id": "x", "type": "manga"})
    entity = copy.deepcopy(manga_entities()[0])
    entity["attributes"]["title"] = {}
    with pytest.raises(SourceParseError):
        parse_manga(entity)


# --- MangaDex chapters ---------------------------------------------------------------


def test_every_recorded_chapter_parses() -> None:
    entities = load("mangadex/manga_feed_mob_psycho_limit100.json")["data"]
    chapters = [parse_chapter(e) for e in entities]
    assert len(chapters) == 100
    for entity, chapter in zip(entities, chapters, strict=True):
        assert chapter.source_id == entity["id"]
        assert chapter.manga_source_id == MOB_PSYCHO
        assert chapter.number == float(entity["attributes"]["chapter"])
        assert chapter.language == entity["attributes"]["translatedLanguage"]
        assert chapter.scanlation_group is not None
    assert sum(c.language == "en" for c in chapters) == 28


def test_decimal_chapter_numbers_and_empty_titles() -> None:
    entities = load("mangadex/manga_feed_mob_psycho_limit100.json")["data"]
    first = parse_chapter(entities[0])
    assert first.number == 60.5
    assert first.volume == "7"
    assert first.title is None  # "" in the feed
    assert first.language == "en"
    assert first.published_at == datetime(2021, 2, 21, 7, 41, 26, tzinfo=UTC)
    assert first.scanlation_group == "9387f5c9-04ae-40d1-b781-3c89968cfa03"  # id only
    numbers = {parse_chapter(e).number for e in entities}
    assert {17.7, 100.17, 9.6} <= numbers


def test_oneshot_has_no_number_and_expanded_group_is_named() -> None:
    # A oneshot is a chapter whose "chapter" is null (MangaDex's schema); the group's
    # name comes from the recorded scanlation_group entity, as includes[] expands it.
    entity = copy.deepcopy(load("mangadex/manga_feed_mob_psycho_limit100.json")["data"][0])
    entity["attributes"]["chapter"] = None
    entity["attributes"]["volume"] = None
    group = load("mangadex/scanlation_group_entity.json")["data"]
    for rel in entity["relationships"]:
        if rel["type"] == "scanlation_group":
            rel["attributes"] = group["attributes"]
    chapter = parse_chapter(entity)
    assert chapter.number is None and chapter.volume is None
    assert chapter.scanlation_group == "Hunlight Scans"


# --- AniList -------------------------------------------------------------------------------


def test_every_recorded_media_parses() -> None:
    items = media_items()
    parsed = [parse_media(m) for m in items]
    assert len(parsed) == 90
    for media, manga in zip(items, parsed, strict=True):
        assert manga.source == "anilist"
        assert manga.record.anilist_id == media["id"] and manga.source_id == str(media["id"])
        assert manga.record.mangadex_id is None
        assert manga.record.title in media["title"].values()
        assert "<br>" not in manga.record.description.lower()
        assert manga.record.extra["adult"] is media["isAdult"]


def test_media_values() -> None:
    media = {m["id"]: m for m in media_items()}
    in_yeon = parse_media(media[38764])
    assert in_yeon.record.title == "In Yeon"  # no English title: romaji
    assert in_yeon.record.alt_titles == ("인연", "Fate")  # native, then synonyms
    assert in_yeon.record.status is MangaStatus.COMPLETED
    assert in_yeon.record.year == 1999  # fuzzy date: only the year is known
    assert in_yeon.score is None  # averageScore null
    assert in_yeon.record.popularity == 33
    assert in_yeon.record.description.startswith("From [RC-SCANS]:\n\nShin-Young")
    fate_zero = parse_media(media[55191])
    assert fate_zero.record.title == "Fate/Zero"
    assert fate_zero.score == 7.5 and fate_zero.record.total_chapters == 74
    assert fate_zero.record.year == 2011
    assert fate_zero.url == "https://anilist.co/manga/55191"
    releasing = parse_media(media[179153])
    assert releasing.record.status is MangaStatus.ONGOING
    unknown_start = parse_media(media[87905])
    assert unknown_start.record.year is None and unknown_start.record.description == ""
    assert parse_media(media[147359]).record.extra["adult"] is True


def test_english_title_first_and_story_art_staff_are_authors() -> None:
    media = {m["id"]: m for m in media_items()}
    chainsaw = parse_media(media[105778])
    assert chainsaw.record.title == "Chainsaw Man"
    # "Story & Art" is an author; the "Assistant" is not
    assert chainsaw.record.authors == ("Tatsuki Fujimoto",)
    assert chainsaw.record.cover_url is not None
    assert chainsaw.record.cover_url.endswith("bx105778-82gwrvQV6OBc.png")


def test_html_in_descriptions_becomes_text() -> None:
    media = {m["id"]: m for m in media_items()}
    text = parse_media(media[35314]).record.description
    assert "school’s secret organization" in text and "&rsquo;" not in text
    text = parse_media(media[133235]).record.description
    assert "<i>" not in text and "Note: Published in Comic Kairakuten BEAST" in text
    assert strip_html("a<BR>b &amp; <b>c</b>") == "a\nb & c"


def test_a_broken_media_is_a_parse_error() -> None:
    with pytest.raises(SourceParseError):
        parse_media({"title": {"romaji": "x"}})
    with pytest.raises(SourceParseError):
        parse_media({"id": 1, "title": {"romaji": None, "english": None}})


def test_lettered_and_unusual_chapter_labels_do_not_fail_the_feed() -> None:
    # MangaDex's own pattern for "chapter" allows a letter suffix ("10a"); such a part
    # counts as its chapter, and a label with no number at all is an unnumbered extra.
    entity = copy.deepcopy(load("mangadex/manga_feed_mob_psycho_limit100.json")["data"][0])
    for label, number in (("10a", 10.0), ("7.5b", 7.5), ("Extra", None), ("nan", None)):
        entity["attributes"]["chapter"] = label
        assert parse_chapter(entity).number == number
