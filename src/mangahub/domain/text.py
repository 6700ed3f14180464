"""Which characters a text field may hold, checked once for every door.

PostgreSQL text cannot hold NUL at all, and other control characters (ANSI escapes,
backspace, bell) in a name or a device label reach every terminal and page that shows
it. So single-line fields (names, queries, devices, titles) refuse every control
character; free text (notes, comments, chat) keeps line feeds and tabs and nothing else.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from mangahub.domain.errors import ValidationFailed

# C0 controls, DEL and the C1 block: what unicodedata calls category "Cc".
_CONTROL = frozenset(chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)))
_CONTROL_EXCEPT_LAYOUT = _CONTROL - {"\n", "\t"}
_CONTROL_RUN = re.compile("[\x01-\x1f\x7f-\x9f]+")


def bad_characters(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be stored (a short message), or None when it can."""
    banned = _CONTROL_EXCEPT_LAYOUT if multiline else _CONTROL
    if banned.isdisjoint(value):
        return None
    return (
        "must not contain control characters other than line feed and tab"
        if multiline
        else "must not contain control characters"
    )


def check_text(value: str, field: str, *, multiline: bool = False) -> str:
    """``value`` unchanged, or ValidationFailed naming ``field``."""
    problem = bad_characters(value, multiline=multiline)
    if problem is not None:
        raise ValidationFailed(f"{field} {problem}", details=[{"field": field, "message": problem}])
    return value


def single_line(value: str) -> str:
    """Imported data is cleaned rather than refused: NUL disappears and each run of
    other control characters becomes one space, so a title from a source fits a
    single-line field."""
    if _CONTROL.isdisjoint(value):
        return value
    return _CONTROL_RUN.sub(" ", value.replace("\x00", ""))


def check_optional(value: str | None, field: str, *, multiline: bool = False) -> str | None:
    return None if value is None else check_text(value, field, multiline=multiline)


def _single_line(value: str) -> str:
    problem = bad_characters(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _multi_line(value: str) -> str:
    problem = bad_characters(value, multiline=True)
    if problem is not None:
        raise ValueError(problem)
    return value


# For schemas: pydantic reports the field in its usual 422 shape.
SINGLE_LINE = AfterValidator(_single_line)
MULTI_LINE = AfterValidator(_multi_line)
PlainText = Annotated[str, SINGLE_LINE]
"""A single-line field: no control character at all."""
FreeText = Annotated[str, MULTI_LINE]
"""Notes, comments, chat: line feeds and tabs allowed, no other control character."""
