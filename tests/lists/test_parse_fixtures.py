"""The two real list files: every entry read with the right values."""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import UTC, date, datetime

from mangahub.domain.enums import MangaFormat, ReadingStatus
from mangahub.lists import ListFormat, detect_format, parse_list
from tests.lists.helpers import ANILIST_FIXTURE, MAL_FIXTURE

R = ReadingStatus


def test_mal_fixture_every_entry() -> None:
    parsed = parse_list(MAL_FIXTURE.read_bytes())
    assert parsed.format is ListFormat.MAL_XML
    entries = parsed.entries
    assert len(entries) == 216
    assert len({e.series.mal_id for e in entries}) == 216
    assert Counter(e.status for e in entries) == {
        R.READING: 147,
        R.PLAN_TO_READ: 35,
        R.COMPLETED: 25,
        R.DROPPED: 6,
        R.ON_HOLD: 3,
    }
    assert sum(e.score is None for e in entries) == 208
    assert sum(e.series.total_chapters is None for e in entries) == 100
    assert min(e.series.mal_id or 0 for e in entries) == 1
    assert max(e.series.mal_id or 0 for e in entries) == 189320
    first = entries[0]
    assert first.series.mal_id == 166182
    assert first.title.startswith('"Ano Toki Tasukete Itadaita Monster Musume desu."')
    assert (first.status, first.chapter, first.volume, first.score) == (R.READING, 5.0, None, None)
    assert (first.started_on, first.finished_on) == (date(2024, 2, 24), None)


def test_mal_fixture_scored_and_completed_entries() -> None:
    entries = parse_list(MAL_FIXTURE.read_bytes()).entries
    scored = sorted((e.series.mal_id, e.score) for e in entries if e.score is not None)
    assert len(scored) == 8
    assert all(1 <= s <= 10 for _, s in scored if s is not None)
    assert Counter(s for _, s in scored) == {9: 4, 8: 2, 7: 1, 10: 1}
    # Read as written: completed at 180 of 201 chapters stays at 180.
    solo = next(e for e in entries if e.series.mal_id == 121496)
    assert solo.title == "Solo Leveling"
    assert (solo.status, solo.chapter, solo.volume, solo.score) == (R.COMPLETED, 180.0, 2, 10)
    assert (solo.series.total_chapters, solo.series.volumes) == (201, None)
    assert (solo.started_on, solo.finished_on) == (date(2021, 7, 23), date(2022, 1, 31))


def test_mal_fixture_gzipped_reads_the_same() -> None:
    raw = MAL_FIXTURE.read_bytes()
    assert parse_list(gzip.compress(raw)) == parse_list(raw)
    assert detect_format(gzip.compress(raw)) is ListFormat.MAL_XML


def test_anilist_fixture_every_entry() -> None:
    parsed = parse_list(ANILIST_FIXTURE.read_bytes())
    assert parsed.format is ListFormat.ANILIST_JSON
    entries = parsed.entries
    assert len(entries) == 144
    assert len({e.series.anilist_id for e in entries}) == 144
    assert Counter(e.status for e in entries) == {
        R.READING: 79,
        R.PLAN_TO_READ: 34,
        R.COMPLETED: 28,
        R.ON_HOLD: 3,
    }
    # The completed list is split by format: the split names the series' format.
    completed = Counter(e.series.format for e in entries if e.status is R.COMPLETED)
    assert completed == {MangaFormat.MANGA: 23, MangaFormat.ONE_SHOT: 5}
    assert sum(e.series.mal_id is None for e in entries) == 4
    assert sum(e.added_at is None for e in entries) == 63
    assert sum(e.updated_at is None for e in entries) == 38  # updatedAt 0 = unknown
    first = entries[0]
    assert first.series.anilist_id == 118584
    assert first.title == "Menhera Shoujo Kurumi-chan."
    assert first.series.alt_titles == ("メンヘラ少女くるみちゃん。",)
    assert (first.status, first.chapter, first.score) == (R.READING, 159.0, None)
    assert first.started_on == date(2021, 11, 29)
    assert first.updated_at == datetime.fromtimestamp(1638162939, UTC)


def test_the_two_fixtures_share_mal_ids() -> None:
    mal = {e.series.mal_id for e in parse_list(MAL_FIXTURE.read_bytes()).entries}
    anilist = {e.series.mal_id for e in parse_list(ANILIST_FIXTURE.read_bytes()).entries}
    assert len(mal & anilist) == 133
