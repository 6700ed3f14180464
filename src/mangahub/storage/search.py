"""Ranked full-text search over the catalog: the one place that knows how the
dialects differ.

- SQLite: the FTS5 table ``manga_fts(title, search_text)`` (rowid = manga.id), ranked
  with ``bm25(manga_fts, 10.0, 1.0)`` so title terms weigh ten times the rest.
- PostgreSQL: the generated ``manga.search_vector`` (title weight A, the rest B, the
  ``simple`` configuration) behind a GIN index, ranked with ``ts_rank``.

User input never reaches either query language as syntax: a query is reduced to its
words (letters and digits only), each becomes a quoted prefix term, and the terms are
AND-ed. Quotes, ``*``, ``:``, ``&``, ``|``, ``!``, parentheses, ``NEAR``, ``AND``/``OR``
are therefore plain text or dropped, and a query with no words yields no search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeVarTuple

from sqlalchemy import ColumnElement, Integer, Select, func, literal_column, select, table
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.expression import column

from mangahub.storage.models import Manga

_Ts = TypeVarTuple("_Ts")

# Words as both engines tokenize them: runs of letters and digits (no underscore,
# which FTS5's unicode61 and PostgreSQL's parser both treat as a separator).
_WORD = re.compile(r"[^\W_]+")
# More terms than this only slows the query down without narrowing it usefully.
MAX_TERMS = 16
MAX_TERM_LENGTH = 64

# The FTS5 table is created by the migration, outside the ORM metadata on purpose.
_fts = table("manga_fts", column("rowid", Integer))
_FTS_TABLE: ColumnElement[Any] = literal_column("manga_fts")
_PG_CONFIG: ColumnElement[Any] = literal_column("'simple'::regconfig")
_PG_VECTOR: ColumnElement[Any] = literal_column("manga.search_vector")


def query_terms(text: str | None) -> list[str]:
    """The distinct lower-cased words of a user query, in order, at most MAX_TERMS."""
    words = (w.lower()[:MAX_TERM_LENGTH] for w in _WORD.findall(text or ""))
    return list(dict.fromkeys(words))[:MAX_TERMS]


@dataclass(frozen=True, slots=True)
class TextSearch:
    """What one text query adds to a ``select`` over :class:`Manga`."""

    dialect: str
    terms: tuple[str, ...]
    # The query as typed, lower-cased with single spaces: an exact title match.
    phrase: str

    def apply(self, stmt: Select[*_Ts]) -> Select[*_Ts]:
        """Restrict ``stmt`` to the series matching every term."""
        if self.dialect == "sqlite":
            match = _FTS_TABLE.op("MATCH")(_fts5_expression(self.terms))
            return stmt.join(_fts, _fts.c.rowid == Manga.id).where(match)
        return stmt.where(_PG_VECTOR.bool_op("@@")(self._tsquery(":*")))

    def ranking(self) -> list[UnaryExpression[Any]]:
        """ORDER BY terms, best match first: the series titled exactly as the query
        ("naruto" → Naruto), then those whose *title* holds every term as a whole word
        ("one" → ONE PIECE), then as prefixes (Oneulman…), then the ones matched only
        through alt titles, authors or genres; within each tier the engine's relevance
        score decides. Callers add their own tie-breakers after these."""
        same_title = (func.lower(Manga.title) == self.phrase).desc()
        if self.dialect == "sqlite":
            bm25: ColumnElement[float] = func.bm25(_FTS_TABLE, 10.0, 1.0)
            # bm25() is negative, more negative = better: ascending order.
            return [
                same_title,
                self._sqlite_title_hit(prefix=False).desc(),
                self._sqlite_title_hit(prefix=True).desc(),
                bm25.asc(),
            ]
        rank: ColumnElement[float] = func.ts_rank(_PG_VECTOR, self._tsquery(":*"))
        return [
            same_title,
            _PG_VECTOR.bool_op("@@")(self._tsquery(":A")).desc(),
            _PG_VECTOR.bool_op("@@")(self._tsquery(":*A")).desc(),
            rank.desc(),
        ]

    def _sqlite_title_hit(self, *, prefix: bool) -> ColumnElement[bool]:
        expression = _fts5_expression(self.terms, column="title", prefix=prefix)
        hits = (
            select(_fts.c.rowid)
            .where(_FTS_TABLE.op("MATCH")(expression))
            .correlate(None)  # its own full-text scan, not the outer query's
            .scalar_subquery()
        )
        return Manga.id.in_(hits)

    def _tsquery(self, suffix: str) -> ColumnElement[Any]:
        # ":*" makes a term a prefix; "A" restricts it to weight A, the title (see
        # the migration).
        return func.to_tsquery(_PG_CONFIG, " & ".join(t + suffix for t in self.terms))


def title_sort_key(dialect: str) -> ColumnElement[str]:
    """Titles compared case-insensitively and by code point on both engines (PostgreSQL
    would otherwise sort by the database's locale, SQLite by bytes)."""
    key: ColumnElement[str] = func.lower(Manga.title)
    return key.collate("C") if dialect == "postgresql" else key


def text_search(dialect: str, text: str | None) -> TextSearch | None:
    """The search for ``text``, or None when it holds no word to look for."""
    terms = query_terms(text)
    if not terms:
        return None
    return TextSearch(dialect, tuple(terms), " ".join((text or "").split()).lower())


def _fts5_expression(
    terms: tuple[str, ...], *, column: str | None = None, prefix: bool = True
) -> str:
    # Each term is a quoted string, followed by "*" for a prefix match; the terms are
    # letters and digits only, so nothing inside the quotes can be FTS5 syntax.
    star = "*" if prefix else ""
    expression = " AND ".join(f'"{term}"{star}' for term in terms)
    return f"{column} : ({expression})" if column else expression
