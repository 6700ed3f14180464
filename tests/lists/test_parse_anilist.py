"""AniList MediaListCollection: statuses, score formats, fuzzy dates, split and custom lists."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import pytest

from mangahub.domain.enums import MangaFormat, ReadingStatus
from mangahub.lists import AnimeListRefused, ListFileError, ListValueError, parse_list


def entry(media_id: int = 30002, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "mediaId": media_id,
        "status": "CURRENT",
        "progress": 30,
        "progressVolumes": 3,
        "repeat": 0,
        "notes": None,
        "startedAt": {"year": 2020, "month": 1, "day": 2},
        "completedAt": {"year": None, "month": None, "day": None},
        "updatedAt": 1638162939,
        "createdAt": 0,
        "score": 0,
        "media": {"idMal": 2, "title": {"romaji": "Berserk", "english": "Berserk"}},
    }
    base.update(fields)
    return base


def collection(*lists: dict[str, Any], score_format: str | None = "POINT_10_DECIMAL") -> bytes:
    data: dict[str, Any] = {"MediaListCollection": {"lists": list(lists)}}
    if score_format:
        data["User"] = {"mediaListOptions": {"scoreFormat": score_format}}
    return orjson.dumps({"data": data})


def lst(*entries: dict[str, Any], name: str = "Reading", split: bool = False) -> dict[str, Any]:
    return {"name": name, "isCustomList": False, "isSplitCompletedList": split, "entries": entries}


def one(data: bytes):  # type: ignore[no-untyped-def]
    entries = parse_list(data).entries
    assert len(entries) == 1
    return entries[0]


@pytest.mark.parametrize(
    ("score_format", "raw", "score"),
    [
        ("POINT_10_DECIMAL", 7.5, 8),
        ("POINT_10_DECIMAL", 7.4, 7),
        ("POINT_10_DECIMAL", 0.3, 1),
        ("POINT_10", 6, 6),
        ("POINT_100", 85, 9),
        ("POINT_100", 84, 8),
        ("POINT_5", 3, 6),
        ("POINT_3", 3, 9),
        ("POINT_3", 1, 3),
        (None, 73, 7),  # no scoreFormat: over 10 can only be the 100-point scale
        (None, 7.5, 8),
        ("POINT_10_DECIMAL", 0, None),
    ],
)
def test_scores_come_to_1_10(score_format: str | None, raw: float, score: int | None) -> None:
    data = collection(lst(entry(score=raw)), score_format=score_format)
    assert one(data).score == score


@pytest.mark.parametrize("raw", [11, -1, "x", True])
def test_invalid_scores(raw: object) -> None:
    with pytest.raises(ListValueError) as caught:
        parse_list(collection(lst(entry(score=raw))))
    assert caught.value.details["field"] == "score"


def test_fuzzy_dates() -> None:
    e = one(
        collection(
            lst(
                entry(
                    startedAt={"year": 2019, "month": None, "day": None},
                    completedAt={"year": 2021, "month": 6, "day": None},
                )
            )
        )
    )
    assert (e.started_on, e.finished_on) == (date(2019, 1, 1), date(2021, 6, 1))


@pytest.mark.parametrize(
    "when",
    [
        {"year": 2021, "month": 13, "day": 1},
        {"year": 2021, "month": 2, "day": 30},
        {"year": None, "month": 5, "day": 1},
        "2021-01-01",
    ],
)
def test_invalid_dates(when: object) -> None:
    with pytest.raises(ListValueError) as caught:
        parse_list(collection(lst(entry(startedAt=when))))
    assert (caught.value.details["title"], caught.value.details["field"]) == (
        "Berserk",
        "startedAt",
    )


def test_repeating_split_and_custom_lists() -> None:
    data = collection(
        lst(entry(1, status="REPEATING", repeat=2)),
        lst(entry(2, status="COMPLETED"), name="Completed One Shot", split=True),
        lst(
            entry(3, status="COMPLETED", media={"title": {"romaji": "X"}, "format": "NOVEL"}),
            name="Completed Manga",
            split=True,
        ),
        # A custom list repeats entries of the status lists.
        {"name": "Favourites", "isCustomList": True, "entries": [entry(1, status="REPEATING")]},
    )
    entries = parse_list(data).entries
    assert [e.series.anilist_id for e in entries] == [1, 2, 3]
    assert (entries[0].status, entries[0].rereading, entries[0].rereads) == (
        ReadingStatus.READING,
        True,
        2,
    )
    assert entries[1].series.format is MangaFormat.ONE_SHOT
    assert entries[2].series.format is MangaFormat.NOVEL  # the media's own format wins
    assert entries[2].series.mal_id is None


def test_anime_lists_are_refused() -> None:
    with pytest.raises(AnimeListRefused):
        parse_list(collection(lst(entry(), name="Watching")))
    anime = entry(media={"idMal": 1, "type": "ANIME", "title": {"romaji": "Cowboy Bebop"}})
    with pytest.raises(AnimeListRefused):
        parse_list(collection(lst(anime)))


def test_not_a_collection() -> None:
    for doc in ({"data": {"MediaListCollection": None}}, {"data": {"MediaListCollection": {}}}):
        with pytest.raises(ListFileError):
            parse_list(orjson.dumps(doc))
    with pytest.raises(ListFileError):
        parse_list(orjson.dumps({"data": {"MediaListCollection": {"lists": [{"name": "x"}]}}}))
    with pytest.raises(ListValueError, match="unknown status"):
        parse_list(collection(lst(entry(status="WATCHED"))))
