"""Build the 10,000-series benchmark catalog from real, public catalog data.

Sources (see bench/datasets/PROVENANCE.md):

* ``anilist_manga_nomoreroads_2024.csv`` - 4,045 AniList manga (titles, status,
  dates, genre flags, list counts).
* ``mal_top500_manga_2020.csv`` - MyAnimeList top 500 (authors, chapters, genres),
  linked to AniList ids through ``anilist_mal_id_map_manga.json``.
* ``mangahub_seed_catalog_mangadex_500.json`` - 500 MangaDex series (the original
  MangaHub seed: descriptions, covers, authors, chapter counts).

Every real series appears exactly once: records that describe the same series in
several sources are merged (AniList id via the MAL map; MangaDex by normalized
title). The real catalog is ~4,300 series, so the rest of the 10,000 are *derived*
entries: ``"<real title> (Omnibus Edition)"`` etc., copying the base series' metadata,
with no external ids and a description that says what they are. They are benchmark
filler, not real editions; a ``.meta.json`` file next to the output records the counts.

The output is a JSON list in the ``SeriesRecord.to_json()`` format and is byte-for-byte
deterministic: same inputs, same file.

    .venv/bin/python bench/build_catalog.py [--out bench/data/catalog_10k.json] [--size 10000]
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaStatus

# The public datasets the titles come from (bench/datasets/PROVENANCE.md), and the
# bundled MangaDex catalog that ships inside the package.
FIXTURES = Path(__file__).resolve().parent / "datasets"
MANGADEX_PATH = Path(__file__).resolve().parent.parent / "src/mangahub/catalog/data"
ANILIST_CSV = "anilist_manga_nomoreroads_2024.csv"
MAL_CSV = "mal_top500_manga_2020.csv"
MAL_MAP_JSON = "anilist_mal_id_map_manga.json"
MANGADEX_JSON = "mangahub_seed_catalog_mangadex_500.json"
DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "catalog_10k.json"

# The 18 AniList genres (the CSV's other flag columns are tags and relation counts).
ANILIST_GENRES = (
    "Action",
    "Adventure",
    "Comedy",
    "Drama",
    "Ecchi",
    "Fantasy",
    "Horror",
    "Mahou Shoujo",
    "Mecha",
    "Music",
    "Mystery",
    "Psychological",
    "Romance",
    "Sci-Fi",
    "Slice of Life",
    "Sports",
    "Supernatural",
    "Thriller",
)

ANILIST_STATUS = {
    "FINISHED": MangaStatus.COMPLETED,
    "RELEASING": MangaStatus.ONGOING,
    "CANCELLED": MangaStatus.CANCELLED,
    "HIATUS": MangaStatus.HIATUS,
    "NOT_YET_RELEASED": MangaStatus.ONGOING,
}
MAL_STATUS = {
    "Finished": MangaStatus.COMPLETED,
    "Publishing": MangaStatus.ONGOING,
    "On Hiatus": MangaStatus.HIATUS,
    "Discontinued": MangaStatus.CANCELLED,
}
# AniList's "popularity" is the number of users with the series on a list.
ANILIST_LIST_COUNTS = (
    "status_CURRENT_count",
    "status_PLANNING_count",
    "status_COMPLETED_count",
    "status_DROPPED_count",
    "status_PAUSED_count",
)
# Suffixes for derived entries, used in this order: one pass over the real catalog each.
EDITION_SUFFIXES = ("Omnibus Edition", "Deluxe Edition", "Collector's Edition", "Box Set")


@dataclass
class Series:
    """A mutable merge target; frozen into a SeriesRecord at the end."""

    title: str
    status: MangaStatus
    origin: str  # "anilist" | "mal" | "mangadex", for the metadata counts
    alt_titles: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    genres: list[str] = field(default_factory=list)
    total_chapters: int | None = None
    description: str = ""
    cover_url: str | None = None
    year: int | None = None
    mangadex_id: str | None = None
    anilist_id: int | None = None
    mal_id: int | None = None
    popularity: int = 0

    def all_titles(self) -> Iterator[str]:
        yield self.title
        yield from self.alt_titles

    def add_alt_title(self, title: str) -> None:
        if title and title != self.title and title not in self.alt_titles:
            self.alt_titles.append(title)

    def to_record(self) -> SeriesRecord:
        return SeriesRecord(
            title=self.title,
            status=self.status,
            alt_titles=tuple(self.alt_titles),
            authors=tuple(self.authors),
            genres=tuple(self.genres),
            total_chapters=self.total_chapters,
            description=self.description,
            cover_url=self.cover_url,
            year=self.year,
            mangadex_id=self.mangadex_id,
            anilist_id=self.anilist_id,
            popularity=self.popularity,
        )


def norm_title(title: str) -> str:
    """Match key for one title: case, punctuation and spacing do not matter."""
    return re.sub(r"[\W_]+", "", title.casefold())


def parse_year(text: str) -> int | None:
    match = re.search(r"\b(1[89]\d\d|20\d\d)\b", text or "")
    return int(match.group(1)) if match else None


def parse_int(text: str) -> int | None:
    try:
        value = int(float(text))
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


# --- AniList ----------------------------------------------------------------------


def load_anilist(path: Path) -> list[Series]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    series = [anilist_series(row) for row in rows]
    series.sort(key=lambda s: s.anilist_id or 0)
    return series


def anilist_series(row: dict[str, str]) -> Series:
    english, romaji = row["eng_title"].strip(), row["rom_title"].strip()
    s = Series(
        title=english or romaji,
        status=ANILIST_STATUS.get(row["status"], MangaStatus.ONGOING),
        origin="anilist",
        genres=[g for g in ANILIST_GENRES if row.get(g, "").strip() not in ("", "0", "0.0")],
        year=parse_year(row["start_date"]),
        anilist_id=int(row["id"]),
        popularity=sum(parse_int(row[c]) or 0 for c in ANILIST_LIST_COUNTS),
    )
    s.add_alt_title(romaji)
    return s


# --- MyAnimeList ------------------------------------------------------------------


def load_mal_to_anilist(path: Path) -> dict[int, list[int]]:
    mapping: dict[int, list[int]] = {}
    for pair in json.loads(path.read_text(encoding="utf-8")):
        if pair.get("idMal") and pair.get("idAL"):
            mapping.setdefault(int(pair["idMal"]), []).append(int(pair["idAL"]))
    return mapping


def mal_authors(cell: str) -> list[str]:
    """``"['Miura, Kentarou (Story & Art)']"`` -> ``["Miura Kentarou"]`` (family name
    first, like the MangaDex seed's ``"Araki Hirohiko"``)."""
    names: list[str] = []
    for raw in ast.literal_eval(cell or "[]"):
        name = re.sub(r"\s*\([^)]*\)\s*$", "", raw).strip()
        name = " ".join(part.strip() for part in name.split(",") if part.strip())
        if name and name not in names:
            names.append(name)
    return names


def mal_genres(cell: str, vocabulary: set[str]) -> list[str]:
    """MAL genres limited to the catalog's vocabulary: the 2020 scrape splits some
    names (``'Super', 'Super'`` for "Super Power"), which must not become genres."""
    genres: list[str] = []
    for name in ast.literal_eval(cell or "[]"):
        if name in vocabulary and name not in genres:
            genres.append(name)
    return genres


def merge_mal(
    catalog: list[Series], path: Path, mal_to_anilist: dict[int, list[int]], vocab: set[str]
) -> None:
    by_anilist = {s.anilist_id: s for s in catalog if s.anilist_id is not None}
    seen_mal: set[int] = set()
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        mal_id = int(row["Manga ID"])
        if mal_id in seen_mal:  # the scrape lists a few ids twice
            continue
        seen_mal.add(mal_id)
        english = row["English Title"].strip()
        english = "" if english == "Unknown" else english
        japanese = row["Japanese Title"].strip()
        chapters = parse_int(row["Chapters"])
        authors = mal_authors(row["Author"])
        anilist_ids = mal_to_anilist.get(mal_id, [])
        target = next((by_anilist[a] for a in anilist_ids if a in by_anilist), None)
        if target is not None:
            target.mal_id = mal_id
            target.authors = target.authors or authors
            target.total_chapters = target.total_chapters or chapters
            target.add_alt_title(english)
            target.add_alt_title(japanese)
            continue
        s = Series(
            title=english or japanese,
            status=MAL_STATUS.get(row["Status"], MangaStatus.ONGOING),
            origin="mal",
            authors=authors,
            genres=mal_genres(row["Genres"], vocab),
            total_chapters=chapters,
            year=parse_year(row["Published"]),
            # Only an unambiguous link becomes an id: anilist_id is unique in the app.
            anilist_id=anilist_ids[0] if len(anilist_ids) == 1 else None,
            mal_id=mal_id,
            popularity=parse_int(row["Members"]) or 0,
        )
        s.add_alt_title(japanese)
        catalog.append(s)
        if s.anilist_id is not None:
            by_anilist[s.anilist_id] = s


# --- MangaDex ---------------------------------------------------------------------


def merge_mangadex(catalog: list[Series], mangas: list[dict[str, Any]]) -> None:
    index: dict[str, Series] = {}
    for s in catalog:
        for title in s.all_titles():
            index.setdefault(norm_title(title), s)
    for m in mangas:
        chapters = int(m.get("total_chapters") or 0) or None  # the seed writes 0 for unknown
        authors = [a.strip() for a in (m.get("author") or "").split(",") if a.strip()]
        target = index.get(norm_title(m["title"]))
        if target is not None and target.mangadex_id is None:
            target.mangadex_id = m["id"]
            target.description = target.description or (m.get("description") or "").strip()
            target.cover_url = target.cover_url or m.get("cover_url")
            target.authors = target.authors or authors
            target.total_chapters = target.total_chapters or chapters
            target.add_alt_title(m["title"])
            continue
        s = Series(
            title=m["title"].strip(),
            status=MangaStatus(m["status"]),
            origin="mangadex",
            authors=authors,
            genres=list(dict.fromkeys(m.get("genres") or [])),
            total_chapters=chapters,
            description=(m.get("description") or "").strip(),
            cover_url=m.get("cover_url"),
            mangadex_id=m["id"],
        )
        catalog.append(s)
        index.setdefault(norm_title(s.title), s)


# --- Uniqueness and derived entries ---------------------------------------------------


def disambiguate_titles(catalog: list[Series]) -> int:
    """Distinct series can share a title (AniList lists a manga and its light novel
    under one English name). Slugs come from titles, so the less popular twin gets
    the romaji title, else the start year, else the author, else a source id in
    parentheses, as trackers do. Returns how many titles were changed."""
    taken: set[str] = set()
    changed = 0
    for s in sorted(catalog, key=popularity_order):
        candidates = [s.title]
        candidates += [f"{s.title} ({alt})" for alt in s.alt_titles[:1]]
        if s.year:
            candidates.append(f"{s.title} ({s.year})")
        candidates += [f"{s.title} ({author})" for author in s.authors[:1]]
        candidates.append(f"{s.title} (#{s.anilist_id or s.mangadex_id or s.mal_id})")
        chosen = next(c for c in candidates if norm_title(c) not in taken)
        if chosen != s.title:
            original, s.title = s.title, chosen
            s.add_alt_title(original)  # still found by a search for the shared title
            changed += 1
        taken.add(norm_title(chosen))
    return changed


def popularity_order(s: Series) -> tuple[int, str, str]:
    return (-s.popularity, norm_title(s.title), s.title)


def derived_entries(real: list[Series], count: int) -> list[Series]:
    """``count`` filler entries: one pass per edition suffix over the real catalog,
    most popular series first, so the filler follows the real popularity curve."""
    ordered = sorted(real, key=popularity_order)
    if count > len(ordered) * len(EDITION_SUFFIXES):
        raise SystemExit(f"cannot derive {count} entries from {len(ordered)} real series")
    out: list[Series] = []
    for i in range(count):
        base = ordered[i % len(ordered)]
        suffix = EDITION_SUFFIXES[i // len(ordered)]
        out.append(
            replace(
                base,
                title=f"{base.title} ({suffix})",
                origin="derived",
                alt_titles=[],
                authors=list(base.authors),
                genres=list(base.genres),
                description=(
                    f"Benchmark catalog entry derived from the real series "
                    f'"{base.title}"; not a real edition.'
                ),
                cover_url=None,
                mangadex_id=None,
                anilist_id=None,
                mal_id=None,
                # Lower than the base so derived entries do not crowd the top of lists.
                popularity=base.popularity // (4 * (i // len(ordered) + 1)),
            )
        )
    return out


def build(fixtures: Path, size: int) -> tuple[list[SeriesRecord], dict[str, Any]]:
    mangadex = json.loads((MANGADEX_PATH / MANGADEX_JSON).read_text(encoding="utf-8"))["mangas"]
    vocabulary = set(ANILIST_GENRES) | {
        g["name"]
        for g in json.loads((MANGADEX_PATH / MANGADEX_JSON).read_text(encoding="utf-8"))["genres"]
    }
    catalog = load_anilist(fixtures / ANILIST_CSV)
    merge_mal(catalog, fixtures / MAL_CSV, load_mal_to_anilist(fixtures / MAL_MAP_JSON), vocabulary)
    merge_mangadex(catalog, mangadex)
    renamed = disambiguate_titles(catalog)
    real = sorted(catalog, key=popularity_order)[:size]
    derived = derived_entries(real, size - len(real))
    check_unique(real + derived)
    records = [s.to_record() for s in real + derived]
    meta = {
        "size": len(records),
        "real_series": len(real),
        "derived_entries": len(derived),
        "real_by_first_source": count_by(s.origin for s in real),
        "real_with_anilist_id": sum(1 for s in real if s.anilist_id is not None),
        "real_with_mal_link": sum(1 for s in real if s.mal_id is not None),
        "real_with_mangadex_id": sum(1 for s in real if s.mangadex_id is not None),
        "titles_disambiguated": renamed,
        "derived_rule": (
            "one pass per suffix over the real series by popularity: "
            + ", ".join(f'"<title> ({x})"' for x in EDITION_SUFFIXES)
            + "; metadata copied from the base series, no external ids, "
            "popularity divided by 4*pass; description states it is not a real edition"
        ),
        "sources": [ANILIST_CSV, MAL_CSV, MAL_MAP_JSON, MANGADEX_JSON],
        "genres": sorted({g for r in records for g in r.genres}),
    }
    return records, meta


def check_unique(catalog: list[Series]) -> None:
    """The app enforces unique slugs, anilist_id and mangadex_id: fail here, not there."""
    for what, keys in (
        ("title", [norm_title(s.title) for s in catalog]),
        ("anilist_id", [s.anilist_id for s in catalog if s.anilist_id is not None]),
        ("mangadex_id", [s.mangadex_id for s in catalog if s.mangadex_id is not None]),
    ):
        if len(keys) != len(set(keys)):
            raise SystemExit(f"duplicate {what} in the built catalog")


def count_by(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items()))


def write(records: list[SeriesRecord], meta: dict[str, Any], out: Path) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps([r.to_json() for r in records], ensure_ascii=False, indent=None)
    out.write_text(body + "\n", encoding="utf-8")
    digest = hashlib.sha256(body.encode()).hexdigest()
    meta = {**meta, "sha256": digest}
    meta_path = out.with_suffix(".meta.json")
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    args = parser.parse_args(argv)
    records, meta = build(args.fixtures, args.size)
    digest = write(records, meta, args.out)
    print(
        f"wrote {args.out}: {meta['size']} series "
        f"({meta['real_series']} real, {meta['derived_entries']} derived) sha256={digest[:16]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
