"""Matching a list entry to a catalog series: ids first, in order, then the title."""

from __future__ import annotations

from mangahub.lists import CatalogKey, MatchIndex, match_entry
from mangahub.lists.records import SeriesRef

CATALOG = [
    CatalogKey(1, "Berserk", mal_id=2, anilist_id=30002, mangadex_id="801513BA-a712"),
    CatalogKey(2, "One Piece", ("ワンピース",), mal_id=13, anilist_id=30013),
    CatalogKey(3, "Fate/Zero", mangadex_id="fz-1"),
    CatalogKey(4, "Twins"),
    CatalogKey(5, "TWINS!"),
    CatalogKey(6, "Berserk of Gluttony", anilist_id=13),
]
INDEX = MatchIndex.build(CATALOG)


def test_ids_in_order_mal_anilist_mangadex() -> None:
    # The MAL id wins even when the AniList id names another series.
    assert match_entry(INDEX, SeriesRef("x", mal_id=13, anilist_id=30002)) == (2, "mal_id")
    assert match_entry(INDEX, SeriesRef("x", mal_id=999, anilist_id=30002)) == (1, "anilist_id")
    assert match_entry(INDEX, SeriesRef("x", anilist_id=13)) == (6, "anilist_id")
    assert match_entry(INDEX, SeriesRef("x", mangadex_id="801513ba-A712")) == (1, "mangadex_id")


def test_normalized_title_and_alt_titles() -> None:
    assert match_entry(INDEX, SeriesRef("ＦＡＴＥ・ＺＥＲＯ")) == (3, "title")
    assert match_entry(INDEX, SeriesRef("one piece!")) == (2, "title")
    assert match_entry(INDEX, SeriesRef("Wan Piisu", alt_titles=("ワンピース",))) == (2, "title")


def test_a_shared_title_names_the_exact_one_else_the_oldest() -> None:
    assert match_entry(INDEX, SeriesRef("TWINS!")) == (5, "title")
    assert match_entry(INDEX, SeriesRef("twins")) == (4, "title")
    assert match_entry(INDEX, SeriesRef("Unknown series", mal_id=5)) is None
    assert match_entry(INDEX, SeriesRef("!!!")) is None


def test_local_id_only_with_an_agreeing_title() -> None:
    assert match_entry(INDEX, SeriesRef("Twins", local_id=4)) == (4, "local_id")
    # Another server's id 4 for another series: fall through to the other keys.
    assert match_entry(INDEX, SeriesRef("Berserk", local_id=4)) == (1, "title")


def test_a_title_never_names_a_series_known_by_other_ids() -> None:
    # "Berserk" with another MAL id is another series (a novel sharing the title).
    assert match_entry(INDEX, SeriesRef("Berserk", mal_id=77)) is None
    # A series matched by title takes the entry's ids: the same title with other
    # ids later in the file is not it.
    index = MatchIndex.build([CatalogKey(1, "Omniscient Reader's Viewpoint")])
    first = SeriesRef("Omniscient Reader's Viewpoint", mal_id=132214)
    assert match_entry(index, first) == (1, "title")
    index.claim(1, first)
    assert match_entry(index, SeriesRef("Omniscient Reader's Viewpoint", mal_id=126146)) is None
    assert match_entry(index, first) == (1, "mal_id")
