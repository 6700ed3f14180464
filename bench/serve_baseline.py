"""The baseline: a bare Starlette app on the same uvicorn config as the MangaHub
bench server. Same paths, JSON bodies of the same shape and size class, no
database, no middleware, no validation - the floor that uvicorn + Starlette
+ JSON encoding cost on this machine.

    .venv/bin/python bench/serve_baseline.py --port 8090 [--ready-file F]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server_config import run, serve

# Shaped like MangaHub's manga details/summary (SPEC "Shapes"); values are fixed.
_SUMMARY: dict[str, Any] = {
    "slug": "vinland-saga",
    "title": "Vinland Saga",
    "authors": ["Yukimura Makoto"],
    "status": "completed",
    "total_chapters": 220,
    "cover_url": "https://mangadex.org/covers/5d1fc77e-706a-4fc5-bea8-486c9be0145d.jpg",
    "average_rating": None,
    "popularity": 102708,
    "genres": ["Action", "Adventure", "Drama"],
}
_DETAILS_EXTRA: dict[str, Any] = {
    "alt_titles": ["ヴィンランド・サガ", "VINLAND SAGA"],
    # Most bench series (AniList-only) have no description, the MangaDex ones ~475
    # characters: this makes the body about the size of the app's average response.
    "description": "Fixed baseline text standing in for a series description. " * 2,
    "year": 2005,
    "mangadex_id": "5d1fc77e-706a-4fc5-bea8-486c9be0145d",
    "anilist_id": 30642,
    "updated_at": "2024-06-18T00:00:00Z",
}


async def manga_details(request: Request) -> JSONResponse:
    # The id comes from the path so the route does per-request work like the real one.
    return JSONResponse({"id": request.path_params["id"], **_SUMMARY, **_DETAILS_EXTRA})


async def advanced_search(request: Request) -> JSONResponse:
    params = request.query_params
    page = int(params.get("page", "1"))
    page_size = int(params.get("page_size", "20"))
    data = [{"id": (page - 1) * page_size + i + 1, **_SUMMARY} for i in range(page_size)]
    filters = {k: params.get(k) for k in ("q", "genres", "status", "sort_by", "order")}
    return JSONResponse(
        {"data": data, "page": page, "page_size": page_size, "total": 10_000, "filters": filters}
    )


def create_baseline_app() -> Starlette:
    return Starlette(
        routes=[
            # Declared first: "advanced-search" must not be taken for an {id}.
            Route("/api/manga/advanced-search", advanced_search),
            Route("/api/manga/{id:int}", manga_details),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="bare Starlette baseline server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()

    async def _main() -> None:
        await serve(create_baseline_app(), args.port, args.ready_file, {"kind": "baseline"})

    run(_main)


if __name__ == "__main__":
    main()
