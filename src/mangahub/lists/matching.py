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
    """Lookups over the catalog. Titles: an exact title names its series; a
    normalized title shared by several series names the oldest of them (so importing
    the same file twice never creates the series twice)."""

    by_mal: dict[int, int] = field(default_factory=dict)
    by_anilist: dict[int, int] = field(default_factory=dict)
    by_mangadex: dict[str, int] = field(default_factory=dict)
    by_exact: dict[str, int] = field(default_factory=dict)
    by_title: dict[str, int] = field(default_factory=dict)
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
        self.by_exact[row.title] = min(self.by_exact.get(row.title, row.id), row.id)
        keys = frozenset(k for t in (row.title, *row.alt_titles) if (k := normalize_title(t)))
        self.titles_of[row.id] = keys
        for key in keys:
            self.by_title[key] = min(self.by_title.get(key, row.id), row.id)


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
    if series.title in index.by_exact:
        return index.by_exact[series.title], "title"
    for key in [normalize_title(series.title), *sorted(titles)]:
        if key in index.by_title:
            return index.by_title[key], "title"
    return None
