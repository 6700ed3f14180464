"""Text helpers of the catalog: slugs and what full-text search indexes."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

from mangahub.services.catalog.limits import MAX_SLUG_BASE

# Characters PostgreSQL's text-search parser reads as markup, paths, hosts or emails.
_PARSER_SPECIAL = re.compile(r"[<>/@.\\]")
_WORDS = re.compile(r"[^\W_]+")


def slugify(value: str, fallback: str = "series") -> str:
    """URL slug of a title or genre name: ``"JoJo's Part 7: SBR"`` → ``jojos-part-7-sbr``.

    Latin text is folded to ASCII; a title with no Latin letters keeps its own
    letters (``나-혼자만-레벨업``) rather than collapsing to nothing.
    """
    text_ = re.sub(r"['’`]", "", value).lower()
    ascii_ = unicodedata.normalize("NFKD", text_).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_).strip("-")
    if not slug:
        slug = re.sub(r"[\W_]+", "-", text_).strip("-")
    return slug[:MAX_SLUG_BASE].strip("-") or fallback


@lru_cache(maxsize=4096)
def genre_slug(name: str) -> str:
    """A genre's identity: "Slice of Life", "slice of life" and "slice-of-life" are one
    genre. Empty for a name without letters or digits (no genre has that slug).
    Cached: imports look up the same few dozen names for every series."""
    return slugify(name, fallback="")


def unique_slug(base: str, taken: set[str]) -> str:
    """``base``, or ``base-2``, ``base-3``… whichever is free; records it as taken."""
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


def build_search_text(
    title: str, alt_titles: Sequence[str], authors: Sequence[str], genres: Iterable[str]
) -> str:
    """What full-text search indexes next to the title (see Manga.search_text): alt
    titles, authors, genre names, then plainer spellings of the names that need them."""
    names = [*alt_titles, *authors]
    variants = (v for name in (title, *names) for v in _plain_spellings(name))
    extra = dict.fromkeys(v for v in variants if v not in (title, *names))
    return " ".join([*names, *genres, *extra])


def _plain_spellings(name: str) -> list[str]:
    """Spellings PostgreSQL's "simple" search needs to find ``name`` by its words.

    Its parser keeps accents ("pokemon" would miss "Pokémon"; SQLite's FTS5 folds
    them itself), reads "Fate/type" as one path and "a.b" as one host name, and skips
    markup such as ``<script>…</script>`` entirely; a copy without accents, and
    for names with such characters a copy of just the words, keeps every word findable.
    """
    decomposed = unicodedata.normalize("NFKD", name)
    folded = unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if not unicodedata.combining(c))
    )
    spellings = [folded]
    if _PARSER_SPECIAL.search(name):
        spellings.append(" ".join(_WORDS.findall(folded)))
    return spellings


def strip_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; imported data is cleaned rather than refused.
    return value.replace("\x00", "")
