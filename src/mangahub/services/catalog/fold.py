"""How titles, names and queries are folded before they are compared, so that the
spellings a reader types find the spelling the catalog stores.

``fold`` applies, in order: Unicode NFKC (full-width letters and digits become
ASCII, half-width katakana full-width), ``×`` read as the letter x
(SPY×FAMILY), case folding, accents and other combining marks dropped (Pokémon,
Sōsō), hiragana written as katakana, apostrophes dropped (JoJo's → jojos). The
result's words are runs of letters and digits; everything else separates them, and
the *compact* form joins them with nothing between, so "Dr. STONE", "dr stone" and
"drstone" are one spelling.

``loose`` also shortens romaji long vowels in Latin words (Haikyuu → haikyu, Sousou
→ soso, Toukyou → tokyo). It makes different English words equal too ("onee" and
"one", "soul" and "sol"), so the index treats such a match as a weaker one.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_APOSTROPHES = re.compile(r"['’`ʼ]")
_WORD = re.compile(r"[^\W_]+")
# Doubled vowels and "ou" as romaji writes long vowels; applied to Latin words only.
_LONG_VOWEL = re.compile(r"([aeiou])\1+|ou")
_LATIN_WORD = re.compile(r"[a-z0-9]+")
_HIRAGANA = range(0x3041, 0x3097)
_KATAKANA_SHIFT = 0x60


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """``text`` folded and reduced to its words, separated by single spaces."""
    value = unicodedata.normalize("NFKC", text).replace("×", " x ").casefold()
    value = _APOSTROPHES.sub("", value)
    decomposed = unicodedata.normalize("NFKD", value)
    value = unicodedata.normalize(
        "NFC", "".join(_katakana(c) for c in decomposed if not unicodedata.combining(c))
    )
    return " ".join(_WORD.findall(value))


def loose(text: str) -> str:
    """``fold(text)`` with romaji long vowels shortened in its Latin words."""
    return " ".join(shorten(word) for word in fold(text).split())


def words(text: str) -> list[str]:
    """The folded words of ``text`` in order."""
    return fold(text).split()


def compact(text: str) -> str:
    """The folded words of ``text`` joined without spaces: spacing and punctuation
    do not matter ("SPY×FAMILY" = "spy x family" = "spyxfamily")."""
    return fold(text).replace(" ", "")


def is_cjk(word: str) -> bool:
    """Whether ``word`` is written in a script without spaces between words
    (Japanese, Chinese): such words are matched inside one another too."""
    return any(_no_spaces(c) for c in word)


def _katakana(c: str) -> str:
    return chr(ord(c) + _KATAKANA_SHIFT) if ord(c) in _HIRAGANA else c


def shorten(word: str) -> str:
    """A folded Latin word with romaji long vowels shortened (haikyuu → haikyu)."""
    if not _LATIN_WORD.fullmatch(word):
        return word
    return _LONG_VOWEL.sub(lambda m: m.group(0)[0], word)


def _no_spaces(c: str) -> bool:
    code = ord(c)
    return (
        0x3040 <= code <= 0x30FF  # kana
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
    )
