"""Which catalog series a list entry is: MAL id, then AniList id, then MangaDex id,
then normalized title (main or alternative). Pure: the catalog rows are given."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from mangahub.lists.records import SeriesRef
from mangahub.sources.titles import normalize_title

MatchedBy = Literal["local_id", "mal_id", "anilist_id", "mangadex_id", "title"]


@dataclass(frozen=True, slots=True)
class CatalogKey:
    """The identifying columns of one catalog series."""

    id: int
    title: str
    alt_titles: tuple[str, ...] = ()
    mal_id: int | None = None
    anilist_id: int | None = None
    mangadex_id: str | None = None


@dataclass(slots=True)
class MatchIndex:
    """Lookups over the catalog. A title shared by two series matches neither: a
    wrong match would put the reader's progress on another series."""

    by_mal: dict[int, int] = field(default_factory=dict)
    by_anilist: dict[int, int] = field(default_factory=dict)
    by_mangadex: dict[str, int] = field(default_factory=dict)
    by_title: dict[str, int | None] = field(default_factory=dict)
    titles_of: dict[int, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, rows: Iterable[CatalogKey]) -> MatchIndex:
        index = cls()
        for row in rows:
            index.add(row)
        return index

    def add(self, row: CatalogKey) -> None:
        if row.mal_id is not None:
            self.by_mal.setdefault(row.mal_id, row.id)
        if row.anilist_id is not None:
            self.by_anilist.setdefault(row.anilist_id, row.id)
        if row.mangadex_id:
            self.by_mangadex.setdefault(row.mangadex_id.lower(), row.id)
        keys = frozenset(k for t in (row.title, *row.alt_titles) if (k := normalize_title(t)))
        self.titles_of[row.id] = keys
        for key in keys:
            known = self.by_title.get(key, row.id)
            self.by_title[key] = row.id if known == row.id else None


def match_entry(index: MatchIndex, series: SeriesRef) -> tuple[int, MatchedBy] | None:
    """The catalog id of the series and what matched it, or None."""
    titles = {k for t in (series.title, *series.alt_titles) if (k := normalize_title(t))}
    # Our own export names this server's id; trust it only when the title agrees.
    if series.local_id is not None and titles & index.titles_of.get(series.local_id, frozenset()):
        return series.local_id, "local_id"
    if series.mal_id is not None and series.mal_id in index.by_mal:
        return index.by_mal[series.mal_id], "mal_id"
    if series.anilist_id is not None and series.anilist_id in index.by_anilist:
        return index.by_anilist[series.anilist_id], "anilist_id"
    if series.mangadex_id and series.mangadex_id.lower() in index.by_mangadex:
        return index.by_mangadex[series.mangadex_id.lower()], "mangadex_id"
    for key in [normalize_title(series.title), *sorted(titles)]:
        found = index.by_title.get(key)
        if found is not None:
            return found, "title"
    return None
