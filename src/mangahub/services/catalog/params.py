"""Search parameters shared by every door: filters, sort key and order."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from mangahub.domain.enums import MangaStatus, SortBy
from mangahub.domain.errors import ValidationFailed

E = TypeVar("E", MangaStatus, SortBy)


def parse_status(value: MangaStatus | str | None) -> MangaStatus | None:
    """A status filter, case-insensitive; ValidationFailed for an unknown one."""
    return _parse_enum(MangaStatus, value, "status")


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
