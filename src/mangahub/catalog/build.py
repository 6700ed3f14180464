"""Turn the public catalog datasets into one list of series (the bundled catalog).

Pure and deterministic: the same input files give the same records in the same order.
Used by ``scripts/build_catalog.py`` (the packaged catalog) and by the benchmark
catalog builder; the datasets themselves live outside the package
(``datasets/catalog/PROVENANCE.md``).

Sources, joined in this order:

1. AniList (``anilist_manga_nomoreroads_2024.csv``): ids, English and romaji titles,
   status, start year, country, genres, tag ranks, list counts.
2. MyAnimeList top 500 (``mal_top500_manga_2020.csv``): linked to AniList ids through
   ``anilist_mal_id_map_manga.json``; adds authors with roles, chapters, volumes, type,
   Japanese titles. Unlinked entries become series of their own.
3. MangaDex API responses: each entity's own ``links`` (``al``, ``mal``) attach its
   MangaDex id, titles in other scripts and description to the linked series.
4. The MangaDex seed (``mangahub_seed_catalog_mangadex_500.json``): matched by MangaDex
   id, else by normalized title; adds descriptions, covers, chapter counts.

Main title rule: MangaDex's title where the MangaDex seed has the series (the name
MangaHub databases already show, so an upgrade renames nothing), else the English
title (AniList, then MAL), else AniList's romaji title, else MAL's Japanese title.
Every other known title is an alt title.

Popularity is on AniList's scale (users with the series on a list, what the AniList
sync stores too); a MAL-only series gets its MAL member count times the median
AniList/MAL ratio of the series both know; a MangaDex-only series has no figure (0).
"""

from __future__ import annotations

import ast
import csv
import json
import re
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mangahub.catalog.records import AuthorRole, SeriesRecord
from mangahub.domain.enums import MangaFormat, MangaStatus

ANILIST_CSV = "anilist_manga_nomoreroads_2024.csv"
MAL_CSV = "mal_top500_manga_2020.csv"
MAL_MAP_JSON = "anilist_mal_id_map_manga.json"
MANGADEX_SEED_JSON = "mangahub_seed_catalog_mangadex_500.json"
MANGADEX_RESPONSES = (
    "manga_list_limit100.json",
    "manga_list_includes_cover_art_limit32.json",
    "manga_entity_nagatoro.json",
)

# The 18 AniList genres; the CSV's other numeric columns are tag ranks (0-100) or
# the non-tag columns below.
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
_NOT_TAGS = re.compile(
    r"^(id|eng_title|rom_title|status|start_date|end_date|start_date_days|end_date_days"
    r"|favorites|source|country|scored_\d+_count|status_[A-Z]+_count|relation_\w+"
    r"|relationmedia_\w+|Total_\w+|Female_\w+)$"
)
# Themes: a series' AniList tags ranked at least this high, strongest first, at most this many.
THEME_MIN_RANK = 60
THEMES_PER_SERIES = 6

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
MAL_FORMAT = {
    "Manga": MangaFormat.MANGA,
    "Manhwa": MangaFormat.MANHWA,
    "Manhua": MangaFormat.MANHUA,
    "One-shot": MangaFormat.ONE_SHOT,
    "Novel": MangaFormat.NOVEL,
    "Light Novel": MangaFormat.NOVEL,
    "Doujinshi": MangaFormat.DOUJINSHI,
}
COUNTRY_FORMAT = {
    "JP": MangaFormat.MANGA,
    "KR": MangaFormat.MANHWA,
    "CN": MangaFormat.MANHUA,
    "TW": MangaFormat.MANHUA,
}
LANGUAGE_FORMAT = {
    "ja": MangaFormat.MANGA,
    "ko": MangaFormat.MANHWA,
    "zh": MangaFormat.MANHUA,
    "zh-hk": MangaFormat.MANHUA,
}
# AniList's "popularity" is the number of users with the series on a list.
ANILIST_LIST_COUNTS = (
    "status_CURRENT_count",
    "status_PLANNING_count",
    "status_COMPLETED_count",
    "status_DROPPED_count",
    "status_PAUSED_count",
)
# MangaDex alt titles kept: English, the original scripts and their romanizations
# (the names readers search by), not every translation.
TITLE_LANGUAGES = frozenset({"en", "ja", "ja-ro", "ko", "ko-ro", "zh", "zh-hk", "zh-ro"})
MANGADEX_COVERS = "https://uploads.mangadex.org/covers"


@dataclass
class Series:
    """A mutable merge target; frozen into a SeriesRecord at the end."""

    status: MangaStatus
    origin: str  # "anilist" | "mal" | "mangadex": the first source that had it
    english: str = ""
    romaji: str = ""
    japanese: str = ""
    mangadex_title: str = ""
    title: str = ""  # set by choose_titles()
    other_titles: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)
    author_roles: list[AuthorRole] = field(default_factory=list)
    genres: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    total_chapters: int | None = None
    volumes: int | None = None
    description: str = ""
    cover_url: str | None = None
    year: int | None = None
    format: MangaFormat | None = None
    mangadex_id: str | None = None
    anilist_id: int | None = None
    mal_id: int | None = None
    anilist_popularity: int | None = None
    mal_members: int | None = None
    popularity: int = 0

    def known_titles(self) -> Iterator[str]:
        for t in (self.mangadex_title, self.english, self.romaji, self.japanese):
            if t:
                yield t
        yield from self.other_titles

    def add_title(self, title: str) -> None:
        title = title.strip()
        if title and title not in self.other_titles:
            self.other_titles.append(title)

    def alt_titles(self) -> list[str]:
        return [t for t in dict.fromkeys(self.known_titles()) if t != self.title]

    def to_record(self) -> SeriesRecord:
        return SeriesRecord(
            title=self.title,
            status=self.status,
            alt_titles=tuple(self.alt_titles()),
            authors=tuple(self.authors),
            genres=tuple(self.genres),
            total_chapters=self.total_chapters,
            description=self.description,
            cover_url=self.cover_url,
            year=self.year,
            mangadex_id=self.mangadex_id,
            anilist_id=self.anilist_id,
            popularity=self.popularity,
            mal_id=self.mal_id,
            format=self.format,
            volumes=self.volumes,
            themes=tuple(self.themes),
            author_roles=tuple(self.author_roles),
        )


@dataclass(frozen=True)
class Sources:
    """Where the input files are."""

    datasets: Path  # the AniList CSV, the MAL CSV and the id map
    mangadex_seed: Path  # the bundled MangaDex seed file
    mangadex_responses: tuple[Path, ...] = ()  # MangaDex API list/entity responses

    @classmethod
    def in_repo(cls, root: Path) -> Sources:
        """The repository's layout: ``datasets/catalog/`` and the MangaDex responses
        recorded for the source-client tests."""
        datasets = root / "datasets" / "catalog"
        responses = root / "tests" / "data" / "sources" / "mangadex"
        return cls(
            datasets=datasets,
            mangadex_seed=datasets / MANGADEX_SEED_JSON,
            mangadex_responses=tuple(responses / name for name in MANGADEX_RESPONSES),
        )


@dataclass
class BuildReport:
    counts: dict[str, int] = field(default_factory=dict)


def norm_title(title: str) -> str:
    """Match key for one title: case, punctuation and spacing do not matter."""
    return re.sub(r"[\W_]+", "", title.casefold())


def parse_year(text: str) -> int | None:
    match = re.search(r"\b(1[89]\d\d|20\d\d)\b", text or "")
    return int(match.group(1)) if match else None


def parse_int(text: str | None) -> int | None:
    try:
        value = int(float(text or ""))
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


# --- AniList ----------------------------------------------------------------------


def load_anilist(path: Path) -> list[Series]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        tags = [c for c in reader.fieldnames or () if c not in ANILIST_GENRES]
        tags = [c for c in tags if not _NOT_TAGS.match(c)]
        series = [anilist_series(row, tags) for row in reader]
    series.sort(key=lambda s: s.anilist_id or 0)
    return series


def anilist_series(row: Mapping[str, str], tag_columns: Sequence[str]) -> Series:
    ranked = [(parse_int(row[t]) or 0, t) for t in tag_columns]
    strongest = sorted((-rank, name) for rank, name in ranked if rank >= THEME_MIN_RANK)
    return Series(
        status=ANILIST_STATUS.get(row["status"], MangaStatus.ONGOING),
        origin="anilist",
        english=row["eng_title"].strip(),
        romaji=row["rom_title"].strip(),
        genres=[g for g in ANILIST_GENRES if row.get(g, "").strip() not in ("", "0", "0.0")],
        themes=[name for _, name in strongest[:THEMES_PER_SERIES]],
        year=parse_year(row["start_date"]),
        format=COUNTRY_FORMAT.get(row["country"]),
        anilist_id=int(row["id"]),
        anilist_popularity=sum(parse_int(row[c]) or 0 for c in ANILIST_LIST_COUNTS),
    )


# --- MyAnimeList ------------------------------------------------------------------


def load_mal_to_anilist(path: Path) -> dict[int, list[int]]:
    mapping: dict[int, list[int]] = {}
    for pair in json.loads(path.read_text(encoding="utf-8")):
        if pair.get("idMal") and pair.get("idAL"):
            mapping.setdefault(int(pair["idMal"]), []).append(int(pair["idAL"]))
    return mapping


def mal_author_roles(cell: str) -> list[AuthorRole]:
    """``"['Miura, Kentarou (Story & Art)']"`` -> ``Miura Kentarou, Story & Art`` (family
    name first, like the MangaDex seed's ``"Araki Hirohiko"``)."""
    people: list[AuthorRole] = []
    for raw in ast.literal_eval(cell or "[]"):
        match = re.search(r"\(([^)]*)\)\s*$", raw)
        role = match.group(1).strip() if match else ""
        name = re.sub(r"\s*\([^)]*\)\s*$", "", raw).strip()
        name = " ".join(part.strip() for part in name.split(",") if part.strip())
        if name and all(p.name != name for p in people):
            people.append(AuthorRole(name, role))
    return people


def mal_genres(cell: str) -> list[str]:
    # The 2020 scrape splits some names ("'Super', 'Super'" for "Super Power").
    return list(dict.fromkeys(str(name) for name in ast.literal_eval(cell or "[]")))


def merge_mal(catalog: list[Series], path: Path, mal_to_anilist: dict[int, list[int]]) -> None:
    by_anilist = {s.anilist_id: s for s in catalog if s.anilist_id is not None}
    genre_vocabulary = set(ANILIST_GENRES)
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
        people = mal_author_roles(row["Author"])
        anilist_ids = mal_to_anilist.get(mal_id, [])
        target = next((by_anilist[a] for a in anilist_ids if a in by_anilist), None)
        if target is None:
            genres = mal_genres(row["Genres"])
            target = Series(
                status=MAL_STATUS.get(row["Status"], MangaStatus.ONGOING),
                origin="mal",
                english=english,
                genres=[g for g in genres if g in genre_vocabulary],
                themes=[g for g in genres if g not in genre_vocabulary and len(g) > 5],
                year=parse_year(row["Published"]),
                # Only an unambiguous link becomes an id: anilist_id is unique.
                anilist_id=anilist_ids[0] if len(anilist_ids) == 1 else None,
            )
            catalog.append(target)
            if target.anilist_id is not None:
                by_anilist[target.anilist_id] = target
        elif english and english != target.english:
            target.add_title(english)
        target.mal_id = mal_id
        target.japanese = target.japanese or row["Japanese Title"].strip()
        target.mal_members = parse_int(row["Members"])
        target.author_roles = target.author_roles or people
        target.authors = target.authors or [p.name for p in people]
        target.total_chapters = target.total_chapters or parse_int(row["Chapters"])
        target.volumes = target.volumes or parse_int(row["Volumes"])
        # MAL's type is explicit (novel, one-shot); AniList's country only hints.
        target.format = MAL_FORMAT.get(row["Type"], target.format or MangaFormat.OTHER)


# --- MangaDex ---------------------------------------------------------------------


def mangadex_entities(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The manga entities of MangaDex API responses (lists or single entities)."""
    out: list[dict[str, Any]] = []
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
        out.extend(x for x in (data if isinstance(data, list) else [data]) if x["type"] == "manga")
    return sorted(out, key=lambda x: str(x["id"]))


def merge_mangadex_links(catalog: list[Series], entities: list[dict[str, Any]]) -> int:
    """MangaDex's own ``links.al``/``links.mal`` put its id on the linked series, with
    its titles in other scripts, its English description and its cover."""
    by_anilist = {s.anilist_id: s for s in catalog if s.anilist_id is not None}
    by_mal = {s.mal_id: s for s in catalog if s.mal_id is not None}
    linked = 0
    for entity in entities:
        attrs = entity["attributes"]
        links = attrs.get("links") or {}
        target = by_anilist.get(parse_int(links.get("al")) or -1) or by_mal.get(
            parse_int(links.get("mal")) or -1
        )
        if target is None or target.mangadex_id is not None:
            continue
        linked += 1
        target.mangadex_id = str(entity["id"])
        titles = [attrs["title"], *attrs["altTitles"]]
        for title in (v for t in titles for lang, v in t.items() if lang in TITLE_LANGUAGES):
            if title.strip() not in (target.english, target.romaji, target.japanese):
                target.add_title(title)
        target.description = (
            target.description or str((attrs.get("description") or {}).get("en") or "").strip()
        )
        target.cover_url = target.cover_url or _cover_url(entity)
        target.format = target.format or LANGUAGE_FORMAT.get(attrs.get("originalLanguage") or "")
        target.year = target.year or attrs.get("year")
    return linked


def _cover_url(entity: Mapping[str, Any]) -> str | None:
    for rel in entity.get("relationships") or ():
        file_name = (rel.get("attributes") or {}).get("fileName")
        if rel.get("type") == "cover_art" and file_name:
            return f"{MANGADEX_COVERS}/{entity['id']}/{file_name}"
    return None


def merge_mangadex_seed(catalog: list[Series], mangas: list[dict[str, Any]]) -> int:
    """The MangaDex seed's series, matched by MangaDex id, else by normalized title
    (any known title of a series that has no MangaDex id yet). Returns the matches."""
    by_id = {s.mangadex_id: s for s in catalog if s.mangadex_id is not None}
    by_title: dict[str, list[Series]] = {}
    for s in catalog:
        for key in dict.fromkeys(norm_title(t) for t in s.known_titles()):
            by_title.setdefault(key, []).append(s)
    matched = 0
    for m in mangas:
        title = str(m["title"]).strip()
        target = by_id.get(m["id"])
        if target is None:
            # The most popular same-titled series that MangaDex has not claimed yet.
            free = [s for s in by_title.get(norm_title(title), ()) if s.mangadex_id is None]
            target = min(free, key=popularity_order) if free else None
        if target is None:
            target = Series(status=MangaStatus(m["status"]), origin="mangadex")
            catalog.append(target)
            by_title.setdefault(norm_title(title), []).append(target)
        else:
            matched += 1
        target.mangadex_id = str(m["id"])
        by_id[target.mangadex_id] = target
        target.mangadex_title = title
        # The seed is the newest source (2025): its status and chapter count win.
        target.status = MangaStatus(m["status"])
        chapters = int(m.get("total_chapters") or 0) or None  # the seed writes 0 for unknown
        target.total_chapters = max(target.total_chapters or 0, chapters or 0) or None
        target.description = (m.get("description") or "").strip() or target.description
        target.cover_url = m.get("cover_url") or target.cover_url
        author = (m.get("author") or "").strip()
        if author:  # first, as the 500-series catalog of earlier releases had it
            target.authors = list(dict.fromkeys([author, *target.authors]))
        target.genres = list(dict.fromkeys([*target.genres, *(m.get("genres") or ())]))
    return matched


# --- titles, popularity, output -------------------------------------------------------


def choose_titles(catalog: list[Series]) -> int:
    """Apply the main title rule; twins sharing a main title (AniList lists a manga
    and its novel under one English name) are told apart as trackers do, the less
    popular one getting its romaji title, else its year, else a source id in
    parentheses. MangaDex titles are never changed. Returns how many were renamed."""
    for s in catalog:
        s.title = s.mangadex_title or s.english or s.romaji or s.japanese
    taken = {norm_title(s.title) for s in catalog if s.mangadex_title}
    renamed = 0
    for s in sorted(catalog, key=popularity_order):
        if s.mangadex_title:
            continue
        candidates = [s.title]
        candidates += [f"{s.title} ({t})" for t in (s.romaji, s.japanese) if t and t != s.title]
        if s.year:
            candidates.append(f"{s.title} ({s.year})")
        candidates.append(f"{s.title} (#{s.anilist_id or s.mal_id})")
        chosen = next(c for c in candidates if norm_title(c) not in taken)
        if chosen != s.title:
            s.add_title(s.title)  # still found by a search for the shared title
            s.title = chosen
            renamed += 1
        taken.add(norm_title(chosen))
    return renamed


def normalize_popularity(catalog: list[Series]) -> float:
    """One popularity figure on AniList's scale (see the module doc); returns the
    MAL-to-AniList factor used."""
    ratios = [
        s.anilist_popularity / s.mal_members
        for s in catalog
        if s.anilist_popularity and s.mal_members
    ]
    factor = statistics.median(ratios) if ratios else 1.0
    for s in catalog:
        if s.anilist_popularity is not None:
            s.popularity = s.anilist_popularity
        elif s.mal_members:
            s.popularity = round(s.mal_members * factor)
    return factor


def popularity_order(s: Series) -> tuple[int, str, str]:
    return (-(s.anilist_popularity or s.popularity), norm_title(s.title), s.title)


def check_unique(records: Sequence[SeriesRecord]) -> None:
    """The app keeps source ids unique: fail here, not in a database."""
    for column in ("mangadex_id", "anilist_id", "mal_id"):
        keys = [getattr(r, column) for r in records if getattr(r, column) is not None]
        if len(keys) != len(set(keys)):
            raise ValueError(f"duplicate {column} in the built catalog")


def build(sources: Sources) -> tuple[list[SeriesRecord], dict[str, Any]]:
    """The real catalog, most popular first, and counts describing it."""
    seed = json.loads(sources.mangadex_seed.read_text(encoding="utf-8"))["mangas"]
    catalog = load_anilist(sources.datasets / ANILIST_CSV)
    mal_map = load_mal_to_anilist(sources.datasets / MAL_MAP_JSON)
    merge_mal(catalog, sources.datasets / MAL_CSV, mal_map)
    linked = merge_mangadex_links(catalog, mangadex_entities(sources.mangadex_responses))
    matched = merge_mangadex_seed(catalog, seed)
    for s in catalog:
        s.format = s.format or MangaFormat.MANGA  # MangaDex-only: the seed does not say
        # Source genres first, then themes that are not already genres.
        s.themes = [t for t in s.themes if t not in s.genres]
    factor = normalize_popularity(catalog)
    renamed = choose_titles(catalog)
    records = [s.to_record() for s in sorted(catalog, key=popularity_order)]
    check_unique(records)
    meta: dict[str, Any] = {
        "series": len(records),
        "by_first_source": _count(s.origin for s in catalog),
        "with_anilist_id": sum(1 for r in records if r.anilist_id is not None),
        "with_mal_id": sum(1 for r in records if r.mal_id is not None),
        "with_mangadex_id": sum(1 for r in records if r.mangadex_id is not None),
        "mangadex_linked_by_links": linked,
        "mangadex_seed_matched": matched,
        "titles_disambiguated": renamed,
        "mal_to_anilist_popularity_factor": round(factor, 4),
        "by_format": _count(r.format.value for r in records if r.format is not None),
    }
    return records, meta


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items()))


def mangadex_seed_records(path: Path) -> list[SeriesRecord]:
    """The MangaDex seed alone, as earlier releases bundled it (500 series, MangaDex
    data only): the starting point of a catalog upgrade, for tests and benchmarks."""
    records = []
    for m in json.loads(path.read_text(encoding="utf-8"))["mangas"]:
        author = str(m.get("author") or "").strip()
        records.append(
            SeriesRecord(
                title=str(m["title"]).strip(),
                status=MangaStatus(str(m.get("status") or "ongoing").lower()),
                authors=(author,) if author else (),
                genres=tuple(dict.fromkeys(str(g).strip() for g in m.get("genres") or ())),
                total_chapters=int(m.get("total_chapters") or 0) or None,
                description=str(m.get("description") or "").strip(),
                cover_url=m.get("cover_url") or None,
                mangadex_id=str(m["id"]),
            )
        )
    return records
