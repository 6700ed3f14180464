"""Unit tests of federated search's merge (one function, no I/O): which hits are one
series."""

from __future__ import annotations

from mangahub.domain.enums import MangaStatus, SourceStatus
from mangahub.domain.schemas import FederatedManga, SourceReport
from mangahub.services.federated import _Answer, _merge

M1 = "11111111-1111-4111-8111-111111111111"
M2 = "22222222-2222-4222-8222-222222222222"


def hit(source: str, title: str, mangadex_id: str | None, anilist_id: int | None) -> FederatedManga:
    return FederatedManga(
        id=None,
        slug=None,
        title=title,
        alt_titles=[],
        authors=[],
        description="",
        genres=[],
        status=MangaStatus.ONGOING,
        total_chapters=None,
        cover_url=None,
        average_rating=None,
        year=None,
        source=source,
        mangadex_id=mangadex_id,
        anilist_id=anilist_id,
    )


def answer(source: str, *hits: FederatedManga) -> _Answer:
    report = SourceReport(name=source, status=SourceStatus.OK, results=len(hits))
    return _Answer(report, list(hits))


def test_a_shared_id_wins_over_an_earlier_title_match() -> None:
    # Two MangaDex series called "Fake"; only the second links to AniList 222. AniList's
    # "Fake" 222 is that second series, not whichever "Fake" came first.
    first = hit("mangadex", "Fake", M1, None)
    second = hit("mangadex", "Fake", M2, 222)
    merged = _merge(
        [answer("mangadex", first, second), answer("anilist", hit("anilist", "Fake", None, 222))],
        [],
    )
    assert [(h.mangadex_id, h.anilist_id) for h in merged] == [(M1, None), (M2, 222)]
