"""Reading single values out of list files, liberally but never silently wrong.

Each reader raises `ListValueError` naming the entry and field when a value
cannot be what the field means; "unknown" spellings (empty, 0000-00-00) are None."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime

from mangahub.lists.errors import ListValueError

MAX_CHAPTER = 100_000
MAX_COUNT = 1_000_000
MAX_ID = 2**31 - 1
MAX_TITLE = 500
MAX_NOTES = 10_000

_DATE = re.compile(r"^(\d{1,4})-(\d{1,2})-(\d{1,2})$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(value: str | None, *, limit: int) -> str | None:
    """Trimmed text without control characters (no store may hold a NUL); None when empty."""
    if value is None:
        return None
    text = _CONTROL.sub(" ", value).strip()
    return text[:limit] if text else None


def _numeric(
    raw: object, *, whole: bool, low: float, high: float, what: str, title: str | None, field: str
) -> float | None:
    """``raw`` (text or JSON number) as a finite number in [low, high]; None when empty.
    ``whole`` refuses fractions ("12.5" is no count)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ListValueError(f"not {what}", title=title, field=field, value=raw)
    try:
        value = float(raw.strip()) if isinstance(raw, str) else float(raw)
    except ValueError:
        raise ListValueError(f"not {what}", title=title, field=field, value=raw) from None
    if not math.isfinite(value) or (whole and not value.is_integer()):
        raise ListValueError(f"not {what}", title=title, field=field, value=raw)
    if not low <= value <= high:
        raise ListValueError(f"{what} out of range", title=title, field=field, value=raw)
    return value


def count(raw: object, *, title: str | None, field: str) -> int:
    """A non-negative whole number; empty means 0."""
    value = _numeric(
        raw, whole=True, low=0, high=MAX_COUNT, what="a whole number", title=title, field=field
    )
    return int(value or 0)


def source_id(raw: object, *, title: str | None, field: str) -> int | None:
    """A MAL or AniList id: a positive integer that fits the 32-bit id columns; 0 or
    empty means none."""
    value = _numeric(raw, whole=True, low=0, high=MAX_ID, what="an id", title=title, field=field)
    return int(value) if value else None


def optional_count(raw: object, *, title: str | None, field: str) -> int | None:
    """A count where 0 or empty means unknown (MAL's manga_chapters, manga_volumes)."""
    return count(raw, title=title, field=field) or None


def chapter(raw: object, *, title: str | None, field: str = "chapter") -> float:
    """A decimal chapter number in [0, 100000]; empty means 0."""
    value = _numeric(
        raw,
        whole=False,
        low=0,
        high=MAX_CHAPTER,
        what="a chapter number",
        title=title,
        field=field,
    )
    return value or 0.0


def number(raw: object, *, title: str | None, field: str) -> float:
    """A finite number (score fields, checked against their scale later); empty means 0."""
    value = _numeric(
        raw, whole=False, low=-math.inf, high=math.inf, what="a number", title=title, field=field
    )
    return value or 0.0


def score_1_10(raw: float, *, scale: float, title: str | None, field: str = "score") -> int | None:
    """A score on `scale` (10, 100, 5, 3) brought to 1-10, half up; 0 means no score."""
    if not math.isfinite(raw) or not 0 <= raw <= scale:
        raise ListValueError(f"score must be 0-{scale:g}", title=title, field=field, value=raw)
    if raw == 0:
        return None
    return min(10, max(1, math.floor(raw * 10 / scale + 0.5)))


def fuzzy_date(
    year: object, month: object, day: object, *, title: str | None, field: str
) -> date | None:
    """A date some of whose parts may be unknown (0 or None): no year means no date,
    an unknown month or day is the first one."""
    raw = f"{year}-{month}-{day}"
    try:
        y = int(year or 0)  # type: ignore[call-overload]
        m = int(month or 0)  # type: ignore[call-overload]
        d = int(day or 0)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ListValueError("not a date", title=title, field=field, value=raw) from None
    if y == 0:
        if m or d:
            raise ListValueError("date has no year", title=title, field=field, value=raw)
        return None
    if m == 0 and d:
        raise ListValueError("date has a day but no month", title=title, field=field, value=raw)
    try:
        return date(y, m or 1, d or 1)
    except ValueError:
        raise ListValueError("not a date", title=title, field=field, value=raw) from None


def mal_date(raw: str | None, *, title: str | None, field: str) -> date | None:
    """MAL's `YYYY-MM-DD`, zero padding optional, `0000-00-00` or empty for unknown."""
    text = (raw or "").strip()
    if not text:
        return None
    match = _DATE.match(text)
    if match is None:
        raise ListValueError("not a YYYY-MM-DD date", title=title, field=field, value=raw)
    return fuzzy_date(*match.groups(), title=title, field=field)


def iso_date(raw: object, *, title: str | None, field: str) -> date | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ListValueError("not a date", title=title, field=field, value=raw)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ListValueError("not a date", title=title, field=field, value=raw) from None


def iso_datetime(raw: object, *, title: str | None, field: str) -> datetime | None:
    """An ISO 8601 timestamp; a naive one is taken as UTC."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ListValueError("not a timestamp", title=title, field=field, value=raw)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ListValueError("not a timestamp", title=title, field=field, value=raw) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def epoch(raw: object, *, title: str | None, field: str) -> datetime | None:
    """Unix seconds (AniList's updatedAt/createdAt); 0 means unknown."""
    if raw is None or raw == 0:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0 or raw > 32503680000:
        raise ListValueError("not a Unix timestamp", title=title, field=field, value=raw)
    return datetime.fromtimestamp(raw, UTC)
