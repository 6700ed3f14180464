"""What we write reads back to the same list; the MAL file is shaped like MAL's own."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from xml.etree import ElementTree

from mangahub.domain.enums import MangaFormat, ReadingStatus
from mangahub.lists import (
    ImportedEntry,
    ListFormat,
    parse_list,
    write_mal_xml,
    write_native_json,
)
from mangahub.lists.records import SeriesRef
from tests.lists.helpers import ANILIST_FIXTURE, MAL_FIXTURE

NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
MAL_TAGS = [
    "manga_mangadb_id", "manga_title", "manga_volumes", "manga_chapters", "my_id",
    "my_read_volumes", "my_read_chapters", "my_start_date", "my_finish_date",
    "my_scanalation_group", "my_score", "my_storage", "my_retail_volumes", "my_status",
    "my_comments", "my_times_read", "my_tags", "my_priority", "my_reread_value",
    "my_rereading", "my_discuss", "my_sns", "update_on_import",
]  # fmt: skip

FULL = ImportedEntry(
    series=SeriesRef(
        title="Ranma ½ ]]> & <co>",
        alt_titles=("らんま½",),
        mal_id=42,
        anilist_id=30042,
        mangadex_id="a1c7c817-4e59-43b7-9365-09675a149a6f",
        total_chapters=407,
        volumes=38,
        format=MangaFormat.MANGA,
        local_id=17,
    ),
    status=ReadingStatus.ON_HOLD,
    chapter=12.5,
    volume=2,
    score=7,
    started_on=date(2020, 2, 29),
    finished_on=None,
    rereads=1,
    rereading=True,
    notes="line one\nline two ]]> <tag> & more",
    added_at=datetime(2020, 2, 29, 10, 0, tzinfo=UTC),
    updated_at=datetime(2021, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
    device="laptop",
)


def test_native_json_keeps_every_field() -> None:
    other = ImportedEntry(series=SeriesRef(title="Local only"), status=ReadingStatus.PLAN_TO_READ)
    data = write_native_json([FULL, other], exported_at=NOW)
    parsed = parse_list(data)
    assert parsed.format is ListFormat.NATIVE_JSON
    assert parsed.entries == [FULL, other]


def test_native_json_round_trips_both_fixtures() -> None:
    for path in (MAL_FIXTURE, ANILIST_FIXTURE):
        entries = parse_list(path.read_bytes()).entries
        assert parse_list(write_native_json(entries, exported_at=NOW)).entries == entries


def test_mal_xml_has_mal_tags_in_mal_order() -> None:
    data = write_mal_xml([FULL], user_name="reader")
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8" ?>\n<myanimelist>')
    root = ElementTree.fromstring(data)
    info = root.find("myinfo")
    assert info is not None
    assert info.findtext("user_export_type") == "2"
    assert info.findtext("user_total_manga") == "1"
    assert info.findtext("user_total_onhold") == "1"
    manga = root.findall("manga")
    assert len(manga) == 1
    assert [child.tag for child in manga[0]] == MAL_TAGS
    text = data.decode()
    assert "<manga_title><![CDATA[Ranma ½ ]]]]><![CDATA[> & <co>]]></manga_title>" in text
    assert "<my_status>On-Hold</my_status>" in text
    assert "<my_finish_date>0000-00-00</my_finish_date>" in text
    assert "<my_start_date>2020-02-29</my_start_date>" in text
    assert "<my_rereading>YES</my_rereading>" in text
    assert "<update_on_import>1</update_on_import>" in text
    assert manga[0].findtext("manga_title") == FULL.series.title
    assert manga[0].findtext("my_comments") == FULL.notes


def test_mal_xml_status_names() -> None:
    names = {
        ReadingStatus.READING: "Reading",
        ReadingStatus.COMPLETED: "Completed",
        ReadingStatus.ON_HOLD: "On-Hold",
        ReadingStatus.DROPPED: "Dropped",
        ReadingStatus.PLAN_TO_READ: "Plan to Read",
    }
    for status, name in names.items():
        e = ImportedEntry(series=SeriesRef(title="T", mal_id=1), status=status)
        assert f"<my_status>{name}</my_status>" in write_mal_xml([e], user_name="u").decode()


def test_mal_xml_round_trips_the_mal_fixture_and_skips_entries_without_mal_id() -> None:
    entries = parse_list(MAL_FIXTURE.read_bytes()).entries
    local = ImportedEntry(series=SeriesRef(title="Local"), status=ReadingStatus.READING)
    data = write_mal_xml([*entries, local], user_name="Cultured_Snowie")
    assert parse_list(data).entries == entries
    assert len(re.findall(rb"<manga>", data)) == 216
