"""One series as any importer hands it to the catalog: the bundled catalog, a benchmark
catalog, the MangaDex and AniList sync jobs. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mangahub.domain.enums import MangaFormat, MangaStatus


@dataclass(frozen=True, slots=True)
class AuthorRole:
    """One credited person and what they did ("Story & Art", "Story", "Art")."""

    name: str
    role: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role}


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
    mal_id: int | None = None
    format: MangaFormat | None = None  # None: the source does not say
    volumes: int | None = None
    themes: tuple[str, ...] = ()
    author_roles: tuple[AuthorRole, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Every field, defaults included (the benchmark catalogs' format)."""
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
            "mal_id": self.mal_id,
            "format": self.format.value if self.format is not None else None,
            "volumes": self.volumes,
            "themes": list(self.themes),
            "author_roles": [a.to_json() for a in self.author_roles],
        }

    def to_compact_json(self) -> dict[str, Any]:
        """Like :meth:`to_json` without empty fields: the bundled file stays small."""
        return {k: v for k, v in self.to_json().items() if v not in (None, "", [], 0)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeriesRecord:
        fmt = data.get("format")
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
            mal_id=data.get("mal_id"),
            format=MangaFormat(fmt) if fmt else None,
            volumes=data.get("volumes"),
            themes=tuple(data.get("themes") or ()),
            author_roles=tuple(
                AuthorRole(str(a["name"]), str(a["role"])) for a in data.get("author_roles") or ()
            ),
        )
