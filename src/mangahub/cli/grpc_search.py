"""Federated search over gRPC (``mangahub manga search --via grpc``): the server asks
its local catalog and the external sources concurrently and merges the results."""

from __future__ import annotations

from typing import Any, Final

import grpc

from mangahub.cli.output import (
    EXIT_AUTH,
    EXIT_BAD_INPUT,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    CliError,
)
from mangahub.v1 import manga_pb2, manga_pb2_grpc

DEADLINE: Final = 30.0
_OPTIONAL = ("id", "slug", "total_chapters", "cover_image_url", "average_rating", "year",
             "mangadex_id", "anilist_id")  # fmt: skip
_EXIT_BY_STATUS: Final = {
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_BAD_INPUT,
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_AUTH,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_AUTH,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: EXIT_UNAVAILABLE,
}


def search(
    address: tuple[str, int], query: str, page: int, limit: int, sources: list[str]
) -> dict[str, Any]:
    """One ``SearchManga`` call, answered in the same page shape as the HTTP search."""
    target = f"{address[0]}:{address[1]}"
    request = manga_pb2.SearchMangaRequest(
        query=query, limit=limit, offset=(page - 1) * limit, sources=sources
    )
    with grpc.insecure_channel(target) as channel:
        stub = manga_pb2_grpc.MangaServiceStub(channel)
        try:
            reply = stub.SearchManga(request, timeout=DEADLINE)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code == grpc.StatusCode.UNAVAILABLE:
                raise CliError(
                    f"cannot reach MangaHub gRPC at {target}", EXIT_UNAVAILABLE
                ) from None
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            raise CliError(str(details), _EXIT_BY_STATUS.get(code, EXIT_ERROR)) from None
    return {
        "data": [_manga(m) for m in reply.results],
        "page": reply.page,
        "page_size": limit,
        "total": reply.total_count,
        "sources": [
            {
                "name": s.name,
                "status": s.status,
                "results": s.results,
                "error": s.error if s.HasField("error") else None,
            }
            for s in reply.sources
        ],
    }


def _manga(m: manga_pb2.Manga) -> dict[str, Any]:
    item: dict[str, Any] = {
        "title": m.title,
        "alt_titles": list(m.alt_titles),
        "authors": list(m.authors),
        "description": m.description,
        "genres": list(m.genres),
        "status": m.status,
        "source": m.source,
    }
    for name in _OPTIONAL:
        item[name] = getattr(m, name) if m.HasField(name) else None
    item["cover_url"] = item.pop("cover_image_url")
    return item
