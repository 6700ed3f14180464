"""A fake MangaDex + AniList for the whole run (reset before each test), clients
pointed at it with short backoff delays, and a local catalog of known content."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mangahub.app import Runtime
from mangahub.cache import Cache, MemoryCache
from mangahub.catalog.build import MANGADEX_SEED_JSON, mangadex_seed_records
from mangahub.services.catalog import CatalogService
from mangahub.services.federated import FederatedSearch
from mangahub.sources.anilist import AniListClient
from mangahub.sources.http import RetryPolicy
from mangahub.sources.mangadex import MangaDexClient
from mangahub.storage.database import Database
from tests.conftest import empty_database
from tests.fakes.sources import FakeSources

# Backoff shrunk so retries take milliseconds; Retry-After is still honoured.
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=2.0)
SOURCE_DEADLINE = 1.0


@pytest.fixture(scope="session")
async def fake_server() -> AsyncIterator[FakeSources]:
    async with FakeSources() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeSources) -> FakeSources:
    fake_server.reset()
    return fake_server


@pytest.fixture
async def mangadex(fake: FakeSources) -> AsyncIterator[MangaDexClient]:
    async with MangaDexClient(
        fake.mangadex_url, rate_per_second=200, burst=50, retry=FAST_RETRY
    ) as client:
        yield client


@pytest.fixture
async def anilist(fake: FakeSources) -> AsyncIterator[AniListClient]:
    async with AniListClient(
        fake.anilist_url, requests_per_minute=12_000, retry=FAST_RETRY
    ) as client:
        yield client


class ScopedCache:
    """The run's real cache (Redis on the postgres backend) under a key prefix of
    its own, so one test's cached answers never serve another's."""

    def __init__(self, inner: Cache) -> None:
        self._inner = inner
        self._prefix = f"t{uuid.uuid4().hex[:8]}:"

    async def get(self, key: str) -> Any | None:
        return await self._inner.get(self._prefix + key)

    async def set(self, key: str, value: Any, ttl: float) -> None:
        await self._inner.set(self._prefix + key, value, ttl)

    async def delete(self, key: str) -> None:
        await self._inner.delete(self._prefix + key)

    async def incr(self, key: str, ttl: float) -> tuple[int, float]:
        return await self._inner.incr(self._prefix + key, ttl)

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        return None


@pytest.fixture
def scoped_cache(runtime: Runtime) -> ScopedCache:
    return ScopedCache(runtime.cache)


@pytest.fixture(scope="session")
async def legacy_catalog_url(
    tmp_path_factory: pytest.TempPathFactory, repo_root: Path
) -> AsyncIterator[str]:
    """A database holding only the 500 MangaDex series earlier releases bundled: the
    bundled catalog knows most series the fake serves, these tests need some that are
    only on MangaDex or AniList (Nagatoro, Jigokuraku) or only local under another
    title (ORV as "Jeonjijeok Dokja Sijeom")."""
    async with empty_database(tmp_path_factory.mktemp("legacy")) as url:
        db = Database(url)
        try:
            await db.migrate()
            seed = repo_root / "datasets" / "catalog" / MANGADEX_SEED_JSON
            await CatalogService(db, MemoryCache()).import_series(mangadex_seed_records(seed))
        finally:
            await db.close()
        yield url


@pytest.fixture(scope="session")
async def legacy_catalog(legacy_catalog_url: str) -> AsyncIterator[CatalogService]:
    db = Database(legacy_catalog_url)
    try:
        yield CatalogService(db, MemoryCache())
    finally:
        await db.close()


@pytest.fixture
def federated(
    legacy_catalog: CatalogService,
    scoped_cache: ScopedCache,
    mangadex: MangaDexClient,
    anilist: AniListClient,
) -> FederatedSearch:
    """The legacy catalog and the run's cache with both sources on the fake (1 s
    deadline each)."""
    return FederatedSearch(
        legacy_catalog, scoped_cache, [mangadex, anilist], source_timeout=SOURCE_DEADLINE
    )
