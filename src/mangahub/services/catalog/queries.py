"""SQL builders of catalog searches: filters and orderings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.sql.elements import UnaryExpression

from mangahub.domain.enums import MangaFormat, MangaStatus, SortBy
from mangahub.services.catalog.index import Entry
from mangahub.services.catalog.text import genre_slug
from mangahub.storage.models import Genre, Manga, MangaGenre
from mangahub.storage.search import title_sort_key


@dataclass(frozen=True, slots=True)
class Filters:
    """What a search keeps, besides its text: every genre named, one status, any of
    the formats, one start year. Novels only when a format asks for them."""

    genres: Sequence[str] = ()
    status: MangaStatus | None = None
    formats: Sequence[MangaFormat] = ()
    year: int | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.genres:
            found.append(_having_genres(self.genres))
        if self.status is not None:
            found.append(Manga.status == self.status.value)
        if self.formats:
            found.append(Manga.format.in_([f.value for f in self.formats]))
        else:
            found.append(Manga.format != MangaFormat.NOVEL.value)
        if self.year is not None:
            found.append(Manga.year == self.year)
        return found

    def accepts(self, entry: Entry) -> bool:
        """The same test as :meth:`conditions`, on an indexed series."""
        if self.status is not None and entry.status != self.status.value:
            return False
        if self.formats:
            if entry.format not in {f.value for f in self.formats}:
                return False
        elif entry.format == MangaFormat.NOVEL.value:
            return False
        if self.year is not None and entry.year != self.year:
            return False
        if self.genres:
            held = {genre_slug(name) for name in entry.genres}
            return all(genre_slug(name) in held for name in self.genres)
        return True


def _having_genres(names: Sequence[str]) -> ColumnElement[bool]:
    """Series having *every* genre named (matched by slug, so case and spacing do not
    matter: "slice of life" finds "Slice of Life")."""
    slugs = {genre_slug(name) for name in names}
    having_all = (
        select(MangaGenre.manga_id)
        .join(Genre, Genre.id == MangaGenre.genre_id)
        .where(Genre.slug.in_(slugs))
        .group_by(MangaGenre.manga_id)
        .having(func.count() == len(slugs))
    )
    return Manga.id.in_(having_all)


def ordering(dialect: str, key: SortBy, direction: str) -> list[UnaryExpression[Any]]:
    """ORDER BY terms of a sort key other than relevance; ties broken by id."""
    column = _sort_column(dialect, key)
    term = column.asc() if direction == "asc" else column.desc()
    if key in (SortBy.RATING, SortBy.CHAPTERS):
        term = term.nulls_last()  # "no rating yet" is not the best or the worst rating
    return [term, Manga.id.asc()]


def _sort_column(dialect: str, sort_by: SortBy) -> ColumnElement[Any]:
    if sort_by is SortBy.TITLE:
        return title_sort_key(dialect)
    columns: dict[SortBy, ColumnElement[Any]] = {
        SortBy.POPULARITY: Manga.popularity.expression,
        SortBy.RATING: Manga.average_rating.expression,
        SortBy.UPDATED: Manga.updated_at.expression,
        SortBy.CHAPTERS: Manga.total_chapters.expression,
    }
    return columns[sort_by]
