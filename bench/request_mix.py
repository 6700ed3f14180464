"""The request mixes: which URLs the load generator sends, built deterministically
from the manga ids in the database and the real titles and genres of the catalog."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

SORT_BY = ("popularity", "rating", "title", "updated", "chapters")
STATUSES = ("ongoing", "completed", "hiatus", "cancelled")
SEARCH_PATHS = 4_000  # distinct advanced-search URLs in the request mix
STOP_WORDS = frozenset({"with", "from", "that", "this", "your", "what", "when", "have", "will"})


@dataclass(frozen=True)
class Scenario:
    name: str
    paths: list[str]


def id_paths(ids: Sequence[int]) -> list[str]:
    """Every manga id once; wrk picks uniformly among them."""
    return [f"/api/manga/{i}" for i in ids]


def real_records(catalog: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Derived filler entries carry no external id; real series have at least one.
    return [r for r in catalog if r.get("anilist_id") or r.get("mangadex_id")]


def search_paths(catalog: list[dict[str, Any]], count: int, seed: int = 2024) -> list[str]:
    """Advanced-search URLs a reader would send: words of real titles, genres as they
    occur in the catalog (so a two-genre AND usually matches), every sort_by."""
    rng = random.Random(seed)
    real = real_records(catalog)
    titled = [words for r in real if (words := title_words(r["title"]))]
    multi_genre = [r["genres"] for r in real if len(r["genres"]) >= 2]
    paths: list[str] = []
    for _ in range(count):
        params: dict[str, str | int] = {}
        if rng.random() < 0.6:
            params["q"] = rng.choice(rng.choice(titled))
        roll = rng.random()
        if roll < 0.35:
            params["genres"] = rng.choice(rng.choice(multi_genre))
        elif roll < 0.5:
            params["genres"] = ",".join(rng.sample(rng.choice(multi_genre), 2))
        if rng.random() < 0.2:
            params["status"] = rng.choice(STATUSES)
        params["sort_by"] = rng.choice(SORT_BY)
        if rng.random() < 0.25:
            params["order"] = rng.choice(("asc", "desc"))
        params["page"] = rng.choice((1, 1, 1, 1, 2, 3))
        params["page_size"] = 20
        paths.append("/api/manga/advanced-search?" + urlencode(params))
    return paths


def title_words(title: str) -> list[str]:
    words = (w.lower() for w in re.findall(r"[A-Za-z]{4,}", title))
    return [w for w in words if w not in STOP_WORDS]
