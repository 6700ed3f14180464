"""The bundled catalog: ~4,300 real series built from public MangaDex, AniList and
MyAnimeList data (``scripts/build_catalog.py``; sources in ``PROVENANCE.md``), shipped
inside the package as gzip-compressed JSON."""

from __future__ import annotations

import gzip
import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

from mangahub.catalog.records import SeriesRecord

BUNDLED_FILE = "catalog.json.gz"
FORMAT_VERSION = 1


def bundled_bytes() -> bytes:
    """The raw bundled file, read from the installed package (works from a wheel too)."""
    return resources.files("mangahub.catalog").joinpath("data", BUNDLED_FILE).read_bytes()


@cache
def bundled_digest() -> str:
    """SHA-256 of the bundled file: tells a database which version of it was loaded."""
    return hashlib.sha256(bundled_bytes()).hexdigest()


def load_bundled() -> list[SeriesRecord]:
    """Every series of the bundled catalog, most popular first."""
    return parse_catalog(json.loads(gzip.decompress(bundled_bytes())))


def parse_catalog(document: dict[str, Any]) -> list[SeriesRecord]:
    if document.get("format") != FORMAT_VERSION:
        raise ValueError(f"unsupported bundled catalog format {document.get('format')!r}")
    return [SeriesRecord.from_json(entry) for entry in document["series"]]
