"""One series as any importer hands it to the catalog: the bundled seed, a benchmark
catalog, the MangaDex and AniList sync jobs. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mangahub.domain.enums import MangaStatus


@dataclass(frozen=True, slots=True)
class SeriesRecord:
    title: str
    status: MangaStatus
    alt_titles: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()
    total_chapters: int | None = None
    description: str = ""
    cover_url: str | None = None
    year: int | None = None
    mangadex_id: str | None = None
    anilist_id: int | None = None
    popularity: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "status": self.status.value,
            "alt_titles": list(self.alt_titles),
            "authors": list(self.authors),
            "genres": list(self.genres),
            "total_chapters": self.total_chapters,
            "description": self.description,
            "cover_url": self.cover_url,
            "year": self.year,
            "mangadex_id": self.mangadex_id,
            "anilist_id": self.anilist_id,
            "popularity": self.popularity,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeriesRecord:
        return cls(
            title=str(data["title"]),
            status=MangaStatus(data.get("status", "ongoing")),
            alt_titles=tuple(data.get("alt_titles") or ()),
            authors=tuple(data.get("authors") or ()),
            genres=tuple(data.get("genres") or ()),
            total_chapters=data.get("total_chapters"),
            description=data.get("description") or "",
            cover_url=data.get("cover_url"),
            year=data.get("year"),
            mangadex_id=data.get("mangadex_id"),
            anilist_id=data.get("anilist_id"),
            popularity=int(data.get("popularity") or 0),
        )
