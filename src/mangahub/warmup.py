"""Start-up warm-up: what readers ask for first is ready before any port accepts.

Without it, a crowd of readers arriving with the server (a restart under load) all
miss at once: each builds the same search index, loads series one by one and renders
the same listing pages, and they queue behind one another for seconds.

``mangahub serve`` runs :func:`warm_up` after the runtime is built (the bus is
connected, so the read model hears invalidations) and before the servers start:

* the database pool's steady connections are opened;
* for the doors that search and show the catalog (REST, gRPC): the search index
  and the in-memory catalog that answers searches are built;
* every series' details, up to the read model's bound (most popular first), come
  from one statement and are rendered for the doors being started (HTTP JSON, gRPC
  message);
* the HTTP door answers the first pages of the catalog listing and the genre list
  once, in process, through its own app, so the cached bytes are the route's own.

The read model's rules hold throughout: a ``catalog.changed`` event that arrives
while a load runs keeps that load out of the cache (see ``CatalogReadModel.warm``).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.types import ASGIApp, Message

from mangahub.app import Runtime
from mangahub.domain.schemas import MangaDetails

log = logging.getLogger(__name__)

# Listing pages (of the default page size) answered at start-up: the catalog's front
# pages, where a crowd of browsing readers lands first.
LISTING_PAGES = 25


async def warm_up(runtime: Runtime, parts: Sequence[str], http_app: ASGIApp | None) -> None:
    """Warm the catalog for the doors in ``parts``; ``http_app`` is the HTTP door's app."""
    started = time.perf_counter()
    connections = await runtime.db.open_pool()
    views = _series_views(parts)
    series = 0
    if views:  # only the doors that search and show the catalog hold it in memory
        await runtime.catalog.warm_up()
        series = await runtime.catalog_reads.warm(views)
    pages = 0 if http_app is None else await _warm_http(http_app)
    log.info(
        "warm-up: %d database connections, %d series and %d pages ready in %.2f s",
        connections,
        series,
        pages,
        time.perf_counter() - started,
    )


YOUNG_COLLECTION_EVERY = 10_000
"""Allocations between two collections of the youngest generation (CPython: 700)."""


def settle() -> None:
    """Start-up is over: what it built (the read models, the search index, the apps,
    some 250,000 objects with a 10,000-series catalog) lives as long as the process.
    Frozen, the cyclic garbage collector's full passes skip it: without this each pass
    walks all of it and stops the event loop for 0.2-1 s under load (measured on
    PostgreSQL with the 10,000-series catalog), which shows as latency spikes of every
    request in flight.

    The youngest generation is collected every 10,000 allocations instead of 700: a
    busy door allocates short-lived objects by the hundred per message (most freed by
    reference counting anyway). Measured with ``bench/tcp_bench.py`` on a quiet
    machine: 52.7 µs of server CPU per acked update against 60.7 µs with CPython's
    700 (a shorter run with fewer held connections showed no difference)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, older, oldest)


def _series_views(parts: Sequence[str]) -> dict[str, Callable[[MangaDetails], Any]]:
    """How each door being started renders a series (the read model's view names)."""
    views: dict[str, Callable[[MangaDetails], Any]] = {}
    if "api" in parts:
        from mangahub.http.routes.manga import details_json

        views["json"] = details_json
    if "grpc" in parts:
        from mangahub.grpcapi.convert import manga_message

        views["grpc"] = manga_message
    return views


async def _warm_http(app: ASGIApp) -> int:
    """GET the listing's first pages and the genre list through ``app``; returns how
    many answered 200 (a failure here is only a cold page later)."""
    requests = [
        ("/api/genres", b""),
        *(("/api/manga", b"page=%d" % n) for n in range(1, LISTING_PAGES + 1)),
    ]
    ok = 0
    for path, query in requests:
        if await _get(app, path, query) == 200:
            ok += 1
    return ok


async def _get(app: ASGIApp, path: str, query: bytes) -> int:
    """One GET through the ASGI app, in process; returns the status (body dropped)."""
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"warm-up")],
        "client": None,
        "server": None,
        "state": {},
    }
    await app(scope, receive, send)
    return status
