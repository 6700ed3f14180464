"""MAL XML: liberal in what it reads, strict about what it cannot mean, safe on hostile input."""

from __future__ import annotations

import gzip
from datetime import date

import pytest

from mangahub.domain.enums import ReadingStatus
from mangahub.lists import (
    AnimeListRefused,
    ListFileError,
    ListTooLarge,
    ListValueError,
    parse_list,
)
from mangahub.lists import source as list_source
from tests.lists.helpers import BILLION_LAUGHS, XXE, mal_entry, mal_file


def one(data: bytes):  # type: ignore[no-untyped-def]
    entries = parse_list(data).entries
    assert len(entries) == 1
    return entries[0]


def test_dates_without_padding_and_unknown_parts() -> None:
    e = one(mal_file(mal_entry(my_start_date="2024-2-3", my_finish_date="2019-00-00")))
    assert e.started_on == date(2024, 2, 3)
    assert e.finished_on == date(2019, 1, 1)


def test_missing_tags_take_mal_defaults() -> None:
    e = one(mal_file("<manga><manga_mangadb_id>7</manga_mangadb_id></manga>"))
    assert e.title == "MyAnimeList #7"
    assert e.status is ReadingStatus.PLAN_TO_READ
    assert (e.chapter, e.volume, e.score, e.rereads, e.rereading) == (0.0, None, None, 0, False)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("On-Hold", ReadingStatus.ON_HOLD),
        ("on hold", ReadingStatus.ON_HOLD),
        ("Plan to Read", ReadingStatus.PLAN_TO_READ),
        ("PLAN_TO_READ", ReadingStatus.PLAN_TO_READ),
        ("6", ReadingStatus.PLAN_TO_READ),
        ("2", ReadingStatus.COMPLETED),
    ],
)
def test_status_spellings(raw: str, status: ReadingStatus) -> None:
    assert one(mal_file(mal_entry(my_status=raw))).status is status


def test_rereading_comments_and_times_read() -> None:
    e = one(
        mal_file(
            mal_entry(
                my_rereading="YES",
                my_times_read="2",
                my_comments="<![CDATA[<b>great</b> & ]]]]><![CDATA[> fun]]>",
            )
        )
    )
    assert (e.rereading, e.rereads) == (True, 2)
    assert e.notes == "<b>great</b> & ]]> fun"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"my_start_date": "2024-13-01"}, "my_start_date"),
        ({"my_finish_date": "2023-02-30"}, "my_finish_date"),
        ({"my_start_date": "yesterday"}, "my_start_date"),
        ({"my_start_date": "0000-05-01"}, "my_start_date"),
        ({"my_score": "11"}, "my_score"),
        ({"my_score": "-1"}, "my_score"),
        ({"my_score": "nine"}, "my_score"),
        ({"my_score": "nan"}, "my_score"),
        ({"my_read_chapters": "-3"}, "my_read_chapters"),
        ({"my_read_chapters": "1e9"}, "my_read_chapters"),
        ({"my_status": "Reading-ish"}, "my_status"),
        ({"my_rereading": "maybe"}, "my_rereading"),
    ],
)
def test_invalid_values_name_the_entry_and_field(fields: dict[str, str], field: str) -> None:
    with pytest.raises(ListValueError) as caught:
        parse_list(mal_file(mal_entry(), mal_entry(**fields)))
    assert caught.value.http_status == 422
    assert caught.value.details["field"] == field
    assert caught.value.details["title"] == "Berserk"
    assert "Berserk" in caught.value.message


def test_xxe_is_refused_without_reading_the_file() -> None:
    with pytest.raises(ListFileError) as caught:
        parse_list(XXE)
    assert "entities" in caught.value.message


def test_billion_laughs_is_refused() -> None:
    with pytest.raises(ListFileError, match="entities"):
        parse_list(BILLION_LAUGHS)


def test_wrong_root() -> None:
    with pytest.raises(ListFileError, match="root element is <library>"):
        parse_list(b"<?xml version='1.0'?><library><manga/></library>")


def test_anime_list_by_export_type_or_element_is_refused() -> None:
    with pytest.raises(AnimeListRefused, match="anime list"):
        parse_list(mal_file(export_type="1"))
    anime = "<anime><series_animedb_id>1</series_animedb_id></anime>"
    with pytest.raises(AnimeListRefused):
        parse_list(mal_file(anime))
    with pytest.raises(AnimeListRefused):
        parse_list(mal_file(mal_entry(my_status="Watching")))


def test_truncated_xml_and_gzip() -> None:
    data = mal_file(mal_entry(), mal_entry())
    with pytest.raises(ListFileError, match="malformed or truncated"):
        parse_list(data[: len(data) // 2])
    packed = gzip.compress(data * 50)
    with pytest.raises(ListFileError, match="gzip file is truncated"):
        parse_list(packed[: len(packed) - 20])
    with pytest.raises(ListFileError, match="gzip"):
        parse_list(packed[:10] + b"\x00" * 40)


def test_not_a_list_file() -> None:
    for data in (b"", b"   ", b"hello", b"\x89PNG\r\n", b"[1, 2]", b'{"a": 1}', b"{not json"):
        with pytest.raises(ListFileError):
            parse_list(data)


def test_body_over_50_mib_is_too_large() -> None:
    with pytest.raises(ListTooLarge) as caught:
        parse_list(b" " * (list_source.MAX_BODY + 1))
    assert caught.value.http_status == 413


def test_gzip_bomb_stops_at_the_decompressed_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(list_source, "MAX_DECOMPRESSED", 1024 * 1024)
    bomb = gzip.compress(mal_file(mal_entry() * 40_000))
    assert len(bomb) < 200_000
    with pytest.raises(ListTooLarge, match="decompressed"):
        parse_list(bomb)


def test_entry_count_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from mangahub.lists import malxml

    monkeypatch.setattr(malxml, "MAX_ENTRIES", 3)
    assert len(parse_list(mal_file(*[mal_entry()] * 3)).entries) == 3
    with pytest.raises(ListTooLarge, match="more than 3 entries"):
        parse_list(mal_file(*[mal_entry()] * 4))


def test_external_dtd_and_parameter_entities_are_refused() -> None:
    external = (
        b'<?xml version="1.0"?>\n<!DOCTYPE myanimelist SYSTEM "http://127.0.0.1:9/x.dtd">\n'
        b"<myanimelist><manga><manga_title>&ext;</manga_title></manga></myanimelist>"
    )
    parameter = (
        b'<?xml version="1.0"?>\n<!DOCTYPE myanimelist [<!ENTITY % p SYSTEM '
        b'"file:///etc/passwd"> %p;]>\n<myanimelist/>'
    )
    for data in (external, parameter, gzip.compress(parameter)):
        with pytest.raises(ListFileError):
            parse_list(data)


def test_deeply_nested_json_is_a_clear_error() -> None:
    with pytest.raises(ListFileError, match="malformed"):
        parse_list(b'{"a":' * 5000 + b"1" + b"}" * 5000)
