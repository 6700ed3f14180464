"""Start-up warm-up: the catalog is ready before a port accepts, answers are the
bytes a cold read would give, the bound holds, and a change that arrives while the
warm-up loads is never hidden by it."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import httpx
import pytest

from mangahub.app import Runtime
from mangahub.bus import MemoryBus
from mangahub.domain.schemas import MangaDetails
from mangahub.grpcapi.convert import manga_message
from mangahub.http.routes.manga import details_json
from mangahub.readmodels import CATALOG_CHANGED, CatalogReadModel, catalog_changed
from mangahub.servers import run_servers


async def top_ids(runtime: Runtime, n: int) -> list[int]:
    return [m.id for m in (await runtime.catalog.list_manga(page_size=n))[0]]


async def test_warm_stores_what_a_cold_read_renders_for_every_view(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    model = CatalogReadModel(runtime.db, MemoryBus())
    await model.start()
    stored = await model.warm({"json": details_json, "grpc": manga_message})
    assert stored > 0
    for manga_id in await top_ids(runtime, 5):
        cold = await client.get(f"/api/manga/{manga_id}")
        assert model.cached(manga_id, "json") == cold.content
        assert model.cached(manga_id, "grpc") == manga_message(await model.load_details(manga_id))


async def test_warm_keeps_to_the_bound_most_popular_first(runtime: Runtime) -> None:
    model = CatalogReadModel(runtime.db, MemoryBus(), max_series=3)
    assert await model.warm({"title": lambda d: d.title}) == 3
    # The listing's default order is by popularity, as the warm-up's.
    first, second, third, fourth = await top_ids(runtime, 4)
    assert all(model.cached(i, "title") is not None for i in (first, second, third))
    assert model.cached(fourth, "title") is None


async def test_a_change_during_the_warm_up_load_is_not_hidden(runtime: Runtime) -> None:
    """The bulk load may have read a row before a commit whose event arrives while it
    runs: that load is dropped and read again; if changes keep coming, nothing is kept
    (the series are then read cold, after the change)."""
    bus = MemoryBus()
    model = CatalogReadModel(runtime.db, bus)
    await model.start()
    [manga_id] = await top_ids(runtime, 1)
    load = model.load_all_details
    loads = 0

    async def load_then_change(limit: int, *, changes: int) -> list[MangaDetails]:
        nonlocal loads
        loads += 1
        found = await load(limit)
        if loads <= changes:
            await bus.publish(CATALOG_CHANGED, catalog_changed(manga_id))
        return found

    async def once(limit: int) -> list[MangaDetails]:
        return await load_then_change(limit, changes=1)

    model.load_all_details = once  # type: ignore[method-assign]
    assert await model.warm({"title": lambda d: d.title}) > 0
    assert loads == 2  # the overtaken load was not kept; the next one was
    assert model.cached(manga_id, "title") is not None

    model.clear()
    loads = 0

    async def always(limit: int) -> list[MangaDetails]:
        return await load_then_change(limit, changes=2)

    model.load_all_details = always  # type: ignore[method-assign]
    assert await model.warm({"title": lambda d: d.title}) == 0
    assert model.cached(manga_id, "title") is None


async def test_nothing_is_warmed_while_other_processes_cannot_be_heard(runtime: Runtime) -> None:
    class Deaf(MemoryBus):
        @property
        def connected(self) -> bool:
            return False

    model = CatalogReadModel(runtime.db, Deaf())
    assert await model.warm({"title": lambda d: d.title}) == 0


async def test_servers_start_with_a_warm_catalog(runtime: Runtime) -> None:
    runtime.catalog_reads.clear()
    settings = runtime.settings.model_copy(update={"http_port": 0, "grpc_port": 0})
    warmed = dataclasses.replace(runtime, settings=settings)
    async with run_servers(warmed, ["api", "grpc"], warm=True) as running:
        ids = await top_ids(runtime, 3)
        # Before any request: every series, rendered for both doors.
        for manga_id in ids:
            assert runtime.catalog_reads.cached(manga_id, "json") is not None
            assert runtime.catalog_reads.cached(manga_id, "grpc") is not None
        host, port = running.address("http")
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            listing: dict[str, Any] = (await client.get("/api/manga")).json()
            assert [m["id"] for m in listing["data"][:3]] == ids


async def test_doors_that_never_show_the_catalog_do_not_load_it(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """A TCP-only replica keeps no series in memory (its memory is its connections)."""
    settings = runtime.settings.model_copy(update={"tcp_port": 0})
    with caplog.at_level(logging.INFO, logger="mangahub.warmup"):
        async with run_servers(dataclasses.replace(runtime, settings=settings), ["tcp"], warm=True):
            pass
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("warm-up:")]
    assert " 0 series " in line
