"""Why a list file was refused; each maps to a 4xx through the domain error tree."""

from __future__ import annotations

from typing import Any

from mangahub.domain.errors import BadRequest, ValidationFailed


class ListFileError(BadRequest):
    """The file is not a list we can read: unknown format, wrong root, broken XML,
    truncated gzip, a DTD or entity declaration."""


class ListTooLarge(BadRequest):
    """The file, its decompressed content or its entry count is over a cap."""

    http_status = 413


class ListValueError(ValidationFailed):
    """A well-formed file with a value no list may hold (a date, a score, a status)."""

    def __init__(self, message: str, *, title: str | None = None, field: str, value: Any) -> None:
        where = f' in "{title}"' if title else ""
        super().__init__(
            f"{message}{where}",
            details={"title": title, "field": field, "value": _short(value)},
        )


class AnimeListRefused(ValidationFailed):
    """An anime list was sent where a manga list belongs."""

    def __init__(self) -> None:
        super().__init__(
            "this is an anime list; MangaHub imports manga lists only "
            "(export your manga list from MyAnimeList or AniList instead)"
        )


def _short(value: Any) -> Any:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 100 else text[:100] + "…"
