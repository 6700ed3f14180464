"""SQL builders of catalog searches: genre filters and orderings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.sql.elements import UnaryExpression

from mangahub.domain.enums import SortBy
from mangahub.services.catalog.params import effective_order
from mangahub.services.catalog.text import genre_slug
from mangahub.storage.models import Genre, Manga, MangaGenre
from mangahub.storage.search import TextSearch, title_sort_key


def filter_genres(stmt: Select[Manga], names: list[str]) -> Select[Manga]:
    """Series having *every* genre named (matched by slug, so case and spacing do not
    matter: "slice of life" finds "Slice of Life")."""
    if not names:
        return stmt
    slugs = {genre_slug(name) for name in names}
    having_all = (
        select(MangaGenre.manga_id)
        .join(Genre, Genre.id == MangaGenre.genre_id)
        .where(Genre.slug.in_(slugs))
        .group_by(MangaGenre.manga_id)
        .having(func.count() == len(slugs))
    )
    return stmt.where(Manga.id.in_(having_all))


def ordering(
    dialect: str, search: TextSearch | None, sort_by: SortBy | None, order: str | None
) -> list[UnaryExpression[Any]]:
    key, direction = effective_order(sort_by, order, search is not None)
    if key == "relevance" and search is not None:
        return [*search.ranking(), Manga.popularity.desc(), Manga.id.asc()]
    column = _sort_column(dialect, SortBy(key))
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
