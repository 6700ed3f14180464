"""Title identity across sources: "Fate/Zero", "FATE ZERO" and "ｆａｔｅ・ｚｅｒｏ" are
one title when matching series from different catalogs."""

from __future__ import annotations

import re
import unicodedata

# Everything that is not a letter or digit in any script (punctuation, symbols,
# spaces, underscores).
_NOT_WORD = re.compile(r"[\W_]+")


def normalize_title(title: str) -> str:
    """NFKC, case-folded, with punctuation and whitespace removed. Empty when the
    title has no letters or digits (such a title matches nothing)."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", title).casefold())
