"""The bundled catalog: 500 real series from MangaDex, shipped inside the package.

The file is kept exactly as it was scraped (see ``PROVENANCE.md``); this module only
reads it and turns each entry into a :class:`SeriesRecord`, interpreting the scrape's
conventions on the way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaStatus

BUNDLED_FILE = "mangahub_seed_catalog_mangadex_500.json"


def bundled_bytes() -> bytes:
    """The raw bundled file, read from the installed package (works from a wheel too)."""
    return resources.files("mangahub.catalog").joinpath("data", BUNDLED_FILE).read_bytes()


@cache
def bundled_digest() -> str:
    """SHA-256 of the bundled file: tells a database which version of it was loaded."""
    return hashlib.sha256(bundled_bytes()).hexdigest()


def load_bundled() -> list[SeriesRecord]:
    """Every series of the bundled catalog, in the file's order."""
    return parse_seed(json.loads(bundled_bytes()))


def parse_seed(document: Mapping[str, Any]) -> list[SeriesRecord]:
    """``{"mangas": [...], "genres": [...]}`` (the original MangaHub scrape) → records."""
    return [_record(entry) for entry in document["mangas"]]


def _record(entry: Mapping[str, Any]) -> SeriesRecord:
    author = str(entry.get("author") or "").strip()
    return SeriesRecord(
        title=str(entry["title"]).strip(),
        status=MangaStatus(str(entry.get("status") or "ongoing").lower()),
        # The scrape keeps one author string per series (no separators occur in it).
        authors=(author,) if author else (),
        # MangaDex lists tags in no meaningful order; duplicates would be noise.
        genres=tuple(dict.fromkeys(str(g).strip() for g in entry.get("genres") or ())),
        total_chapters=_chapter_count(entry.get("total_chapters")),
        description=str(entry.get("description") or "").strip(),
        cover_url=entry.get("cover_url") or None,
        mangadex_id=str(entry["id"]),
    )


def _chapter_count(value: Any) -> int | None:
    # MangaDex leaves "lastChapter" blank for most running series and the scrape wrote
    # that as 0; no published series has zero chapters, so 0 means "not known".
    count = int(value or 0)
    return count if count > 0 else None
