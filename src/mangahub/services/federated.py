"""Federated search: the local catalog first, then what external sources know.

Only the local catalog is searched so far; external sources plug in as
:class:`~mangahub.sources.models.SearchSource` objects.
"""

from __future__ import annotations

from collections.abc import Sequence

from mangahub.domain.enums import SourceStatus
from mangahub.domain.errors import ValidationFailed
from mangahub.domain.schemas import (
    MAX_PAGE_SIZE,
    FederatedManga,
    FederatedResults,
    MangaDetails,
    SourceReport,
)
from mangahub.services.catalog import CatalogService

LOCAL = "local"


def local_hit(manga: MangaDetails) -> FederatedManga:
    return FederatedManga(
        id=manga.id,
        slug=manga.slug,
        title=manga.title,
        alt_titles=manga.alt_titles,
        authors=manga.authors,
        description=manga.description,
        genres=manga.genres,
        status=manga.status,
        total_chapters=manga.total_chapters,
        cover_url=manga.cover_url,
        average_rating=manga.average_rating,
        year=manga.year,
        source=LOCAL,
        mangadex_id=manga.mangadex_id,
        anilist_id=manga.anilist_id,
    )


class FederatedSearch:
    def __init__(self, catalog: CatalogService) -> None:
        self._catalog = catalog

    @property
    def source_names(self) -> tuple[str, ...]:
        return (LOCAL,)

    async def search(
        self,
        query: str,
        *,
        limit: int = 20,
        offset: int = 0,
        sources: Sequence[str] = (),
        timeout: float | None = None,
    ) -> FederatedResults:
        """Series matching ``query``; ``sources`` narrows which are asked (all when
        empty); ``timeout`` is the caller's whole budget in seconds."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        if offset < 0:
            raise ValidationFailed("offset must not be negative")
        unknown = sorted(set(sources) - set(self.source_names))
        if unknown:
            raise ValidationFailed(f"unknown source(s): {', '.join(unknown)}")
        page = offset // limit + 1
        summaries, total = await self._catalog.advanced_search(query, page=page, page_size=limit)
        details = [await self._catalog.get_manga(m.id) for m in summaries]
        hits = [local_hit(m) for m in details]
        report = SourceReport(name=LOCAL, status=SourceStatus.OK, results=len(hits))
        return FederatedResults(results=hits, total=total, page=page, sources=[report])
