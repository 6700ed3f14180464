"""Browsing the catalog from the ``mangahub`` command line: genres, formats and
statuses listed; an unknown genre is a one-line error naming the close ones."""

from __future__ import annotations

from mangahub.domain.enums import MangaFormat, MangaStatus
from tests.cli.conftest import MakeCli


def test_genres_formats_and_statuses_are_listed(make_cli: MakeCli) -> None:
    cli = make_cli()
    genres = cli.invoke("manga", "genres", "--json").json()
    assert {"Action", "Slice of Life"} <= {g["name"] for g in genres}
    human = cli.invoke("manga", "genres").ok().stdout
    assert "Slice of Life" in human and f"{len(genres)} genres" in human
    assert cli.invoke("manga", "formats", "--json").json() == [f.value for f in MangaFormat]
    assert "manhwa" in cli.invoke("manga", "formats").ok().stdout
    assert cli.invoke("manga", "statuses", "--json").json() == [s.value for s in MangaStatus]


def test_unknown_genre_names_the_close_ones(make_cli: MakeCli) -> None:
    cli = make_cli()
    wrong = cli.invoke("manga", "search", "--genre", "slice of lfe")
    wrong.one_line_error(2, "unknown genre", "Slice of Life")


def test_format_and_year_filters(make_cli: MakeCli) -> None:
    cli = make_cli()
    found = cli.invoke(
        "manga", "search", "--format", "manga", "--year", "2000", "--limit", "5", "--json"
    ).json()
    assert found["filters"]["formats"] == ["manga"] and found["filters"]["year"] == 2000
    assert all(m["format"] == "manga" for m in found["data"])
