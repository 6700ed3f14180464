"""Domain objects as ``mangahub.v1`` messages: the same shapes every door serializes."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from mangahub.domain.schemas import (
    EntryPublic,
    FederatedManga,
    FederatedResults,
    MangaDetails,
    SourceReport,
)
from mangahub.services.federated import local_hit
from mangahub.v1 import manga_pb2

INT32_MAX = 2**31 - 1


def manga_message(manga: FederatedManga | MangaDetails) -> manga_pb2.Manga:
    """A series; unknown values (no rating yet, no year...) stay unset, not zero."""
    hit = local_hit(manga) if isinstance(manga, MangaDetails) else manga
    return manga_pb2.Manga(
        id=hit.id,
        slug=hit.slug,
        title=hit.title,
        alt_titles=hit.alt_titles,
        authors=hit.authors,
        description=hit.description,
        genres=hit.genres,
        status=hit.status.value,
        total_chapters=hit.total_chapters,
        cover_image_url=hit.cover_url,
        average_rating=hit.average_rating,
        year=hit.year,
        source=hit.source,
        mangadex_id=hit.mangadex_id,
        anilist_id=hit.anilist_id,
    )


def source_message(report: SourceReport) -> manga_pb2.SourceReport:
    return manga_pb2.SourceReport(
        name=report.name, status=report.status.value, results=report.results, error=report.error
    )


def search_message(found: FederatedResults) -> manga_pb2.MangaSearchResponse:
    return manga_pb2.MangaSearchResponse(
        results=[manga_message(m) for m in found.results],
        total_count=min(found.total, INT32_MAX),
        page=min(found.page, INT32_MAX),
        sources=[source_message(r) for r in found.sources],
    )


def progress_message(entry: EntryPublic) -> manga_pb2.Progress:
    updated_at, added_at = Timestamp(), Timestamp()
    updated_at.FromDatetime(entry.updated_at)
    added_at.FromDatetime(entry.added_at)
    return manga_pb2.Progress(
        manga_id=entry.manga_id,
        chapter=entry.chapter,
        status=entry.status.value,
        version=entry.version,
        device=entry.device,
        updated_at=updated_at,
        volume=entry.volume,
        score=entry.score,
        started_on=None if entry.started_on is None else entry.started_on.isoformat(),
        finished_on=None if entry.finished_on is None else entry.finished_on.isoformat(),
        rereads=entry.rereads,
        rereading=entry.rereading,
        added_at=added_at,
        title=entry.manga.title,
    )
