"""Every series' summary in memory, filtered and ordered without SQL.

The catalog is small (tens of thousands of series at most), so a search page is
answered here: filters are boolean masks over numpy columns, each sort key and
direction is one precomputed ordering (built when first asked for after a change),
and a page is the ordering's accepted positions sliced. The orders are those of
:func:`.queries.ordering`: NULL ratings and chapter counts last in both directions,
titles by their lower-cased code points (Python's Unicode-aware ``str.lower``, the
same on both backends), ties by id.

Memory: one :class:`Listing` (its ``MangaSummary`` made on first use) per series,
plus a few 8-byte columns and one cached ordering per sort key and direction
(at most 10 x 8 bytes per series), and a boolean mask per genre filtered on (at most
one byte per series and genre). All of it is proportional to the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from mangahub.domain.enums import MangaFormat, SortBy
from mangahub.domain.schemas import MangaSummary
from mangahub.services.catalog.queries import Filters
from mangahub.services.catalog.text import genre_slug

Positions = npt.NDArray[np.intp]
Mask = npt.NDArray[np.bool_]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SORT_KEYS = [key.value for key in SortBy]


@dataclass(slots=True, eq=False)
class Listing:
    """One series as search pages show it, plus what they filter and sort on."""

    summary_fields: dict[str, Any]
    year: int | None
    updated_at: datetime
    genre_slugs: frozenset[str] = field(init=False)
    _summary: MangaSummary | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.genre_slugs = frozenset(genre_slug(g) for g in self.summary_fields["genres"])

    @property
    def id(self) -> int:
        return int(self.summary_fields["id"])

    def same_as(self, other: Listing) -> bool:
        return (self.summary_fields, self.year, self.updated_at) == (
            other.summary_fields,
            other.year,
            other.updated_at,
        )

    def summary(self) -> MangaSummary:
        if self._summary is None:
            self._summary = MangaSummary.model_validate(self.summary_fields)
        return self._summary


class CatalogTable:
    """The listings and the columns, masks and orders derived from them."""

    def __init__(self) -> None:
        self._listings: dict[int, Listing] = {}
        self._columns: _Columns | None = None

    def __len__(self) -> int:
        return len(self._listings)

    def put(self, listings: Iterable[Listing]) -> None:
        """Add series or replace the ones under the same id (unchanged ones are kept,
        with what was derived from them)."""
        for listing in listings:
            old = self._listings.get(listing.id)
            if old is None or not old.same_as(listing):
                self._listings[listing.id] = listing
                self._columns = None

    def remove(self, series: int) -> None:
        if self._listings.pop(series, None) is not None:
            self._columns = None

    def prepare(self) -> None:
        """Derive the columns, every ordering and every summary now rather than in
        the next searches."""
        columns = self._derived()
        for key in _SORT_KEYS:
            for direction in ("asc", "desc"):
                columns.rank(key, direction)
        for listing in columns.listings:
            listing.summary()

    def rated(self, series: int, rating: float | None) -> bool:
        """Whether the series is listed with this average rating."""
        listing = self._listings.get(series)
        return listing is not None and listing.summary_fields["average_rating"] == rating

    def has_genres(self, slugs: Iterable[str]) -> bool:
        """Whether some series has each genre (so none of them is unknown)."""
        return all(slug in self._derived().genres for slug in slugs)

    def page(
        self,
        filters: Filters,
        ranked: Sequence[int] | None,
        key: str,
        direction: str,
        start: int,
        size: int,
    ) -> tuple[list[MangaSummary], int]:
        """One page of the series passing ``filters`` and the total: of ``ranked``
        (a text search's matches, best first) when given, else of the whole catalog;
        by ``key`` and ``direction``, or in ``ranked``'s order for relevance."""
        columns = self._derived()
        mask = columns.mask(filters)
        if ranked is None:
            order = columns.order(key, direction)
            hits = order[mask[order]]
        else:
            found = np.fromiter(
                (p for p in map(columns.position.get, ranked) if p is not None), np.intp
            )
            hits = found[mask[found]]
            if key != "relevance":
                hits = hits[np.argsort(columns.rank(key, direction)[hits], kind="stable")]
        chosen = hits[start : start + size]
        return [columns.listings[p].summary() for p in chosen.tolist()], len(hits)

    def _derived(self) -> _Columns:
        if self._columns is None:
            self._columns = _Columns([self._listings[i] for i in sorted(self._listings)])
        return self._columns


class _Columns:
    """Column arrays over the listings in id order (position = index in that order,
    so a stable sort on one key leaves ties by id)."""

    def __init__(self, listings: list[Listing]) -> None:
        self.listings = listings
        self.position = {listing.id: p for p, listing in enumerate(listings)}
        fields = [listing.summary_fields for listing in listings]
        self._codes: dict[str, int] = {}
        self._status = self._coded(f["status"] for f in fields)
        self._format = self._coded(f["format"] for f in fields)
        self._year = np.array([-1 if x.year is None else x.year for x in listings], np.int64)
        self.genres: dict[str, list[int]] = {}
        for p, listing in enumerate(listings):
            for slug in listing.genre_slugs:
                self.genres.setdefault(slug, []).append(p)
        self._keys: dict[str, npt.NDArray[Any]] = {
            SortBy.POPULARITY: np.array([f["popularity"] for f in fields], np.float64),
            SortBy.RATING: _nullable(f["average_rating"] for f in fields),
            SortBy.CHAPTERS: _nullable(f["total_chapters"] for f in fields),
            SortBy.UPDATED: np.array([_micros(x.updated_at) for x in listings], np.float64),
            SortBy.TITLE: _title_ranks([str(f["title"]) for f in fields]),
        }
        self._orders: dict[tuple[str, str], Positions] = {}
        self._ranks: dict[tuple[str, str], Positions] = {}
        self._genre_masks: dict[str, Mask] = {}

    def _coded(self, values: Iterable[object]) -> npt.NDArray[np.int64]:
        codes = self._codes
        return np.array([codes.setdefault(str(v), len(codes)) for v in values], np.int64)

    def mask(self, filters: Filters) -> Mask:
        if filters.formats:
            wanted = [self._codes.get(f.value, -1) for f in filters.formats]
            mask = np.isin(self._format, wanted)
        else:
            mask = self._format != self._codes.get(MangaFormat.NOVEL.value, -1)
        if filters.status is not None:
            mask &= self._status == self._codes.get(filters.status.value, -1)
        if filters.year is not None:
            mask &= self._year == filters.year
        for slug in {genre_slug(name) for name in filters.genres}:
            mask &= self._genre_mask(slug)
        return mask

    def _genre_mask(self, slug: str) -> Mask:
        found = self._genre_masks.get(slug)
        if found is None:
            found = np.zeros(len(self.listings), np.bool_)
            found[self.genres.get(slug, [])] = True
            self._genre_masks[slug] = found
        return found

    def order(self, key: str, direction: str) -> Positions:
        """Every position by ``key`` in ``direction`` (NULLs last), ties by id."""
        found = self._orders.get((key, direction))
        if found is None:
            values = self._keys[key]
            # Negated for descending; NaN (NULL) sorts last either way.
            found = np.argsort(-values if direction == "desc" else values, kind="stable")
            self._orders[key, direction] = found
        return found

    def rank(self, key: str, direction: str) -> Positions:
        """Position → its place in :meth:`order`."""
        found = self._ranks.get((key, direction))
        if found is None:
            order = self.order(key, direction)
            found = np.empty_like(order)
            found[order] = np.arange(len(order))
            self._ranks[key, direction] = found
        return found


def _nullable(values: Iterable[float | int | None]) -> npt.NDArray[np.float64]:
    return np.array([np.nan if v is None else v for v in values], np.float64)


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch (naive times, as SQLite returns them, are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


_MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def _title_ranks(titles: list[str]) -> npt.NDArray[np.float64]:
    """Each title's place among the lower-cased titles (equal ones share it)."""
    lowered = [title.lower() for title in titles]
    ranks = {title: rank for rank, title in enumerate(sorted(set(lowered)))}
    return np.array([ranks[title] for title in lowered], np.float64)
