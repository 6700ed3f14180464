"""Search parameters shared by every door: filters, sort key and order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NoReturn, TypeVar

from rapidfuzz import fuzz, process

from mangahub.domain.enums import MangaFormat, MangaStatus, SortBy
from mangahub.domain.errors import ValidationFailed
from mangahub.domain.schemas import MAX_YEAR, MIN_YEAR
from mangahub.services.catalog.fold import fold

E = TypeVar("E", MangaStatus, SortBy, MangaFormat)
# WRatio score (0-100) from which a known name is suggested for an unknown one.
_CLOSE_ENOUGH = 60


def parse_status(value: MangaStatus | str | None) -> MangaStatus | None:
    """A status filter, case-insensitive; ValidationFailed for an unknown one."""
    return _parse_enum(MangaStatus, value, "status")


def parse_formats(value: str | Iterable[MangaFormat | str] | None) -> list[MangaFormat]:
    """``"manga, Manhwa"`` → the formats, case-insensitive; ValidationFailed for an
    unknown one."""
    items = split_genres(value if isinstance(value, str) else [str(v) for v in value or ()])
    return list(
        dict.fromkeys(f for f in (_parse_enum(MangaFormat, v, "format") for v in items) if f)
    )


def parse_year(value: int | str | None) -> int | None:
    """A start-year filter (MIN_YEAR..MAX_YEAR)."""
    if value is None or value == "":
        return None
    try:
        year = int(value)
    except ValueError:
        raise invalid("year", "must be a whole number") from None
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise invalid("year", f"must be {MIN_YEAR}..{MAX_YEAR}")
    return year


def parse_sort(value: SortBy | str | None) -> SortBy | None:
    return _parse_enum(SortBy, value, "sort_by")


def parse_order(value: str | None) -> str | None:
    """``asc`` or ``desc`` in any case, or None for the sort key's default."""
    if value is None:
        return None
    if value.strip().lower() not in ("asc", "desc"):
        raise invalid("order", "must be asc or desc")
    return value.strip().lower()


def split_genres(value: str | Iterable[str] | None) -> list[str]:
    """``"Action, comedy,"`` → ``["Action", "comedy"]`` (order kept, blanks dropped)."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return list(dict.fromkeys(item.strip() for item in items if item.strip()))


def effective_order(sort_by: SortBy | None, order: str | None, has_query: bool) -> tuple[str, str]:
    """``(sort key, direction)`` that a search really applies: relevance for a text
    query without ``sort_by``, popularity otherwise; descending except for title."""
    if sort_by is None and has_query:
        return "relevance", "desc"
    key = sort_by or SortBy.POPULARITY
    return key.value, order or ("asc" if key is SortBy.TITLE else "desc")


def _parse_enum(kind: type[E], value: E | str | None, name: str) -> E | None:
    if value is None or isinstance(value, kind):
        return value
    try:
        return kind(value.strip().lower())
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise invalid(name, f"must be one of {allowed}") from None


def invalid(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"invalid {name}", details=[{"field": name, "message": message}])


def close_names(value: str, names: Iterable[str], limit: int = 5) -> list[str]:
    """The ``names`` closest to ``value`` (spelling folded: "shounen" is close to
    "Shōnen"), best first; what an error about an unknown name suggests."""
    choices = {name: fold(name) for name in names}
    found = process.extract(
        fold(value), choices, scorer=fuzz.WRatio, limit=limit, score_cutoff=_CLOSE_ENOUGH
    )
    return [name for _, _, name in found]


def unknown_names(field: str, kind: str, unknown: Sequence[str], known: Iterable[str]) -> NoReturn:
    """ValidationFailed naming each of ``unknown`` with the known names close to it."""
    known = list(known)
    details = []
    for name in unknown:
        close = close_names(name, known)
        hint = f"; close names: {', '.join(close)}" if close else ""
        details.append(
            {"field": field, "message": f"unknown {kind} {name!r}{hint}", "close": close}
        )
    raise ValidationFailed(f"unknown {kind}", details=details)
