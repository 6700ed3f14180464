"""Which catalog series a list entry is: MAL id, then AniList id, then MangaDex id,
then normalized title (main or alternative). Pure: the catalog rows are given."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
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
    by_exact: dict[str, list[int]] = field(default_factory=dict)
    by_title: dict[str, list[int]] = field(default_factory=dict)
    titles_of: dict[int, frozenset[str]] = field(default_factory=dict)
    rows: dict[int, CatalogKey] = field(default_factory=dict)

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
        self.rows[row.id] = row
        _insert_sorted(self.by_exact.setdefault(row.title, []), row.id)
        keys = frozenset(k for t in (row.title, *row.alt_titles) if (k := normalize_title(t)))
        self.titles_of[row.id] = keys
        for key in keys:
            _insert_sorted(self.by_title.setdefault(key, []), row.id)

    def claim(self, manga_id: int, series: SeriesRef) -> None:
        """A series matched by title takes the entry's ids, so a later entry of the
        same file with other ids (a novel and its manga share a title) is not it."""
        row = self.rows.get(manga_id)
        if row is None:
            return
        claimed = replace(
            row,
            mal_id=row.mal_id if row.mal_id is not None else series.mal_id,
            anilist_id=row.anilist_id if row.anilist_id is not None else series.anilist_id,
            mangadex_id=row.mangadex_id or series.mangadex_id,
        )
        self.rows[manga_id] = claimed
        if claimed.mal_id is not None:
            self.by_mal.setdefault(claimed.mal_id, manga_id)
        if claimed.anilist_id is not None:
            self.by_anilist.setdefault(claimed.anilist_id, manga_id)
        if claimed.mangadex_id:
            self.by_mangadex.setdefault(claimed.mangadex_id.lower(), manga_id)

    def first_compatible(self, candidates: list[int], series: SeriesRef) -> int | None:
        """The oldest candidate whose known ids do not name another series."""
        for manga_id in candidates:
            if not _ids_conflict(self.rows[manga_id], series):
                return manga_id
        return None


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
    exact = index.first_compatible(index.by_exact.get(series.title, []), series)
    if exact is not None:
        return exact, "title"
    for key in [normalize_title(series.title), *sorted(titles)]:
        found = index.first_compatible(index.by_title.get(key, []), series)
        if found is not None:
            return found, "title"
    return None


def _ids_conflict(row: CatalogKey, series: SeriesRef) -> bool:
    pairs = (
        (row.mal_id, series.mal_id),
        (row.anilist_id, series.anilist_id),
        (
            row.mangadex_id and row.mangadex_id.lower(),
            series.mangadex_id and series.mangadex_id.lower(),
        ),
    )
    return any(ours is not None and theirs is not None and ours != theirs for ours, theirs in pairs)


def _insert_sorted(ids: list[int], manga_id: int) -> None:
    if manga_id not in ids:
        bisect.insort(ids, manga_id)
