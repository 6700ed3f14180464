"""Search quality and latency: do readers find the series they mean, and how fast?

Queries are drawn from the real catalog (the bundled one, built from the datasets in
``datasets/catalog/``), most popular series first, in classes:

* ``exact``     the main title as stored
* ``other``     another Latin-script title of the series (English ↔ romaji)
* ``japanese``  a title in Japanese script
* ``variant``   the main title lower-cased without punctuation, or without spaces
* ``typo1``     one letter of the main title's longest word replaced
* ``typo2``     two letters replaced (a word of 7+ letters)
* ``author``    an author's name, as stored or in the other order
* ``issue``     the spellings readers reported ("berserc", "one pice", "frieren", ...)

Each query has its right answers: the series it was drawn from (by its source ids),
and for names shared by several series (two "Wind Breaker"s) every series carrying
that name; for an author every series of theirs. A query scores top-1 when the first
result is right and top-5 when one of the first five is. Latency is the service call
(``CatalogService.advanced_search``, index lookup and SQL), warm, three passes.

Catalogs: the bundled catalog and the 10,000-series benchmark catalog
(``bench/build_catalog.py``: the real series plus derived "(Omnibus Edition)"-style
entries, which act as distractors), on SQLite and PostgreSQL. Baseline in the same
run: the full-text search it replaces (FTS5 / tsvector prefix terms, title tiers,
then popularity), over the same database.

    .venv/bin/python bench/search_quality.py [--backend sqlite|postgres|both]
        [--catalog bundled|10k|both] [--quick] [--misses]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from mangahub.cache import MemoryCache
from mangahub.catalog.loader import load_bundled
from mangahub.catalog.records import SeriesRecord
from mangahub.domain.schemas import MangaSummary
from mangahub.services._common import fetch_page
from mangahub.services.catalog import CatalogService
from mangahub.services.catalog.fold import compact, is_cjk
from mangahub.services.catalog.index import Entry, SearchIndex
from mangahub.services.catalog.live_index import MAX_MATCHES
from mangahub.storage.database import Database
from mangahub.storage.models import Manga
from mangahub.storage.search import text_search

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.build_catalog import build_bench  # noqa: E402
from bench.seed_bench import fresh_database  # noqa: E402

PASSES = 3
# The series queries are drawn from: the most popular of the real catalog.
POOL = 600
_LETTERS = "abcdefghijklmnopqrstuvwxyz"

# What readers reported not finding, with the main title they meant.
ISSUE_QUERIES = (
    ("berserc", "Berserk"),
    ("one pice", "ONE PIECE"),
    ("frieren", "Sousou no Frieren"),
    ("spy x family", "SPY×FAMILY"),
    ("spyxfamily", "SPY×FAMILY"),
    ("dr stone", "Dr. STONE"),
    ("haikyu", "Haikyu!!"),
    ("Haikyuu!!", "Haikyu!!"),
    ("naruto", "Naruto"),
    ("jujutsu kaisen", "Jujutsu Kaisen"),
    ("attack on titan", "Attack on Titan"),
    ("shingeki no kyojin", "Attack on Titan"),
    ("death note", "Death Note"),
    ("one piece", "ONE PIECE"),
    ("進撃の巨人", "Attack on Titan"),
    ("eiichiro oda", "ONE PIECE"),
    ("kentaro miura", "Berserk"),
    ("oyasumi punpun", "Goodnight Punpun"),
)


@dataclass(frozen=True)
class Query:
    kind: str
    text: str
    target: SeriesRecord
    # Folded names any of whose carriers is a right answer too.
    names: frozenset[str] = frozenset()
    author: str | None = None


@dataclass
class Score:
    top1: int = 0
    top5: int = 0
    count: int = 0

    def add(self, hit1: bool, hit5: bool) -> None:
        self.top1 += hit1
        self.top5 += hit5
        self.count += 1

    def rates(self) -> tuple[float, float]:
        return self.top1 / max(self.count, 1), self.top5 / max(self.count, 1)


# --- the query set ------------------------------------------------------------------


def build_queries(records: Sequence[SeriesRecord]) -> list[Query]:
    pool = [r for r in records[:POOL] if len(compact(r.title)) >= 3]
    by_title = {r.title: r for r in records}
    queries: list[Query] = []

    def take(kind: str, limit: int, make: Callable[[SeriesRecord], Query | None]) -> None:
        made = 0
        for record in pool:
            query = make(record)
            if query is not None and query.text.strip():
                queries.append(query)
                made += 1
                if made == limit:
                    return

    def named(kind: str, text: str, record: SeriesRecord, meant: str) -> Query:
        return Query(kind, text, record, frozenset({compact(meant)}))

    take("exact", 30, lambda r: named("exact", r.title, r, r.title))
    take("other", 30, lambda r: _other(r))
    take("japanese", 25, lambda r: _japanese(r))
    take("variant", 25, lambda r: _variant(r))
    take("typo1", 25, lambda r: _typo(r, 1))
    take("typo2", 20, lambda r: _typo(r, 2))
    seen_authors: set[str] = set()

    def author(r: SeriesRecord) -> Query | None:
        name = next((a for a in r.authors if compact(a) not in seen_authors), None)
        if name is None or len(name.split()) < 2:
            return None
        seen_authors.add(compact(name))
        text = name if len(seen_authors) % 2 else " ".join(reversed(name.split()))
        return Query("author", text, r, author=compact(name))

    take("author", 20, author)
    for text, title in ISSUE_QUERIES:
        record = by_title.get(title)
        if record is not None:
            if text in ("eiichiro oda", "kentaro miura"):
                queries.append(Query("issue", text, record, author=compact(record.authors[0])))
            else:
                queries.append(named("issue", text, record, title))
    return queries


def _other(r: SeriesRecord) -> Query | None:
    for alt in r.alt_titles:
        if not is_cjk(alt) and compact(alt) != compact(r.title) and len(compact(alt)) >= 4:
            return Query("other", alt, r, frozenset({compact(alt)}))
    return None


def _japanese(r: SeriesRecord) -> Query | None:
    for alt in r.alt_titles:
        if is_cjk(alt):
            return Query("japanese", alt, r, frozenset({compact(alt)}))
    return None


def _variant(r: SeriesRecord) -> Query | None:
    words = re.findall(r"[^\W_]+", r.title.lower())
    if re.search(r"[^\w\s]", r.title):
        text = " ".join(words)
    elif len(words) > 1:
        text = "".join(words)
    else:
        return None
    return Query("variant", text, r, frozenset({compact(r.title)}))


def _typo(r: SeriesRecord, letters: int) -> Query | None:
    words = r.title.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    word = words[longest]
    if not word.isascii() or not word.isalpha() or len(word) < (7 if letters == 2 else 4):
        return None
    chars = list(word)
    for position in (len(word) // 2, 1)[:letters]:
        old = chars[position].lower()
        chars[position] = _LETTERS[(_LETTERS.index(old) + 7) % 26] if old in _LETTERS else "x"
    words[longest] = "".join(chars)
    return Query(f"typo{letters}", " ".join(words), r, frozenset({compact(r.title)}))


# --- right answers --------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: int
    title: str
    alt_titles: tuple[str, ...]
    authors: tuple[str, ...]
    mangadex_id: str | None
    anilist_id: int | None
    popularity: int


def right_answers(query: Query, rows: Sequence[Row], index: dict[str, set[int]]) -> set[int]:
    target = query.target
    right = {
        row.id
        for row in rows
        if (target.anilist_id is not None and row.anilist_id == target.anilist_id)
        or (target.mangadex_id is not None and row.mangadex_id == target.mangadex_id)
    }
    for name in query.names:
        right |= index.get(name, set())
    if query.author is not None:
        right |= index.get("author:" + query.author, set())
    return right


def name_index(rows: Sequence[Row]) -> dict[str, set[int]]:
    index: defaultdict[str, set[int]] = defaultdict(set)
    for row in rows:
        for name in (row.title, *row.alt_titles):
            index[compact(name)].add(row.id)
        for author in row.authors:
            index["author:" + compact(author)].add(row.id)
            index["author:" + compact(" ".join(reversed(author.split())))].add(row.id)
    return index


# --- running ------------------------------------------------------------------------------


Search = Callable[[str], Awaitable[list[int]]]


def new_search(service: CatalogService) -> Search:
    async def run(q: str) -> list[int]:
        found, _ = await service.advanced_search(q, page_size=5)
        return [m.id for m in found]

    return run


def baseline_search(db: Database) -> Search:
    """The full-text search this replaces, as the service ran it: prefix terms AND-ed
    (FTS5 / tsvector), title tiers, then popularity; one page of summaries."""

    async def run(q: str) -> list[int]:
        search = text_search(db.dialect, q)
        if search is None:
            return []
        stmt = search.apply(select(Manga))
        stmt = stmt.order_by(*search.ranking(), Manga.popularity.desc(), Manga.id.asc())
        async with db.session() as s:
            rows, _ = await fetch_page(s, stmt, 1, 5)
            return [MangaSummary.model_validate(row[0]).id for row in rows]

    return run


async def measure(
    search: Search, queries: Sequence[Query], answers: Sequence[set[int]], passes: int
) -> tuple[dict[str, Score], list[float], list[tuple[Query, list[int]]]]:
    for query in queries[:10]:
        await search(query.text)  # warm: index built, statements cached
    scores: dict[str, Score] = defaultdict(Score)
    timings: list[float] = []
    misses: list[tuple[Query, list[int]]] = []
    for n in range(passes):
        for query, right in zip(queries, answers, strict=True):
            start = time.perf_counter()
            found = await search(query.text)
            timings.append(time.perf_counter() - start)
            if n == 0:
                hit1, hit5 = bool(found[:1]) and found[0] in right, bool(right & set(found))
                scores[query.kind].add(hit1, hit5)
                scores["all"].add(hit1, hit5)
                if not hit1:
                    misses.append((query, found))
    return scores, timings, misses


def index_only(rows: Sequence[Row], queries: Sequence[Query], passes: int) -> tuple[float, float]:
    """p50 and p95 (ms) of the in-process index's own lookup, no SQL around it."""
    index = SearchIndex()
    index.put(Entry(r.id, r.title, r.alt_titles, r.authors, (), r.popularity) for r in rows)
    index.prepare()
    timings = []
    for _ in range(passes):
        for query in queries:
            start = time.perf_counter()
            index.search(query.text, MAX_MATCHES)
            timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1e3, p95(timings) * 1e3


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


async def run_one(
    backend: str, catalog: str, queries: list[Query], passes: int, show_misses: bool
) -> None:
    async with fresh_database(backend) as db:
        service = CatalogService(db, MemoryCache())
        start = time.perf_counter()
        if catalog == "bundled":
            await service.seed_bundled()
        else:
            records, _ = build_bench(10_000)
            await service.import_series(records)
        load_s = time.perf_counter() - start
        async with db.session() as s:
            rows = [
                Row(
                    r.id,
                    r.title,
                    tuple(r.alt_titles),
                    tuple(r.authors),
                    r.mangadex_id,
                    r.anilist_id,
                    r.popularity,
                )
                for r in (await s.scalars(select(Manga))).all()
            ]
        names = name_index(rows)
        answers = [right_answers(q, rows, names) for q in queries]
        print(f"\n## {catalog} catalog ({len(rows)} series), {backend}; loaded in {load_s:.1f} s")
        results = {}
        for label, search in (
            ("forgiving", new_search(service)),
            ("baseline", baseline_search(db)),
        ):
            results[label] = await measure(search, queries, answers, passes)
        new_scores, new_times, misses = results["forgiving"]
        base_scores, base_times, _ = results["baseline"]
        print(
            f"{'class':10} {'n':>4} {'top-1':>7} {'top-5':>7}   {'baseline top-1':>14} {'top-5':>7}"
        )
        for kind in sorted(new_scores, key=lambda k: (k == "all", k)):
            n1, n5 = new_scores[kind].rates()
            b1, b5 = base_scores[kind].rates()
            count = new_scores[kind].count
            print(f"{kind:10} {count:>4} {n1:>7.3f} {n5:>7.3f}   {b1:>14.3f} {b5:>7.3f}")
        new_p50, new_p95 = statistics.median(new_times) * 1e3, p95(new_times) * 1e3
        base_p50, base_p95 = statistics.median(base_times) * 1e3, p95(base_times) * 1e3
        print(
            f"latency ms: forgiving p50 {new_p50:.2f} p95 {new_p95:.2f} | "
            f"baseline p50 {base_p50:.2f} p95 {base_p95:.2f} | "
            f"p95 ratio {new_p95 / base_p95:.2f}x ({len(new_times)} calls each)"
        )
        index_p50, index_p95 = index_only(rows, queries, passes)
        print(
            f"index alone (no database, same process): p50 {index_p50:.2f} ms "
            f"p95 {index_p95:.2f} ms"
        )
        if show_misses:
            titles = {row.id: row.title for row in rows}
            for query, found in misses:
                got = [titles.get(i, "?") for i in found[:3]]
                print(
                    f"  miss {query.kind:8} {query.text!r} → {got} (meant {query.target.title!r})"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--catalog", choices=("bundled", "10k", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="one pass, SQLite, bundled only")
    parser.add_argument("--misses", action="store_true", help="print every top-1 miss")
    args = parser.parse_args(argv)
    queries = build_queries(load_bundled())
    kinds = defaultdict(int)
    for query in queries:
        kinds[query.kind] += 1
    print(f"# search quality: {len(queries)} queries ({dict(kinds)})")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    catalogs = ["bundled", "10k"] if args.catalog == "both" else [args.catalog]
    passes = PASSES
    if args.quick:
        backends, catalogs, passes = ["sqlite"], ["bundled"], 1
    for backend in backends:
        for catalog in catalogs:
            asyncio.run(run_one(backend, catalog, queries, passes, args.misses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
