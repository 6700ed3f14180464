"""Sync tests run on a private database per test (the sync jobs rewrite the catalog,
which the rest of the suite shares), on the run's backend, against the fake sources
over real sockets."""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from mangahub.app import Runtime, build_runtime
from mangahub.domain.schemas import RegisterIn
from mangahub.sources.anilist import AniListClient
from mangahub.sources.http import RetryPolicy
from mangahub.sources.mangadex import MangaDexClient
from mangahub.sources.registry import SourceClients
from mangahub.sync.runner import SyncRunner
from mangahub.sync.setup import build_runner
from tests.conftest import BACKEND, REDIS_URL, Backend, postgres_database
from tests.fakes.sources import DATA, FakeSources

# Backoff shrunk so retries take milliseconds; Retry-After is still honoured.
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=2.0)


@dataclass
class SyncEnv:
    """One private database, its runtime, and how to reach it from a subprocess."""

    backend: Backend
    runtime: Runtime


@pytest.fixture(scope="session")
async def sync_fake() -> AsyncIterator[FakeSources]:
    async with FakeSources() as fake:
        yield fake


@pytest.fixture
def fake(sync_fake: FakeSources) -> FakeSources:
    sync_fake.reset()
    return sync_fake


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[SyncEnv]:
    suffix = uuid.uuid4().hex[:12]
    async with contextlib.AsyncExitStack() as stack:
        if BACKEND == "postgres":
            url = await stack.enter_async_context(postgres_database(f"mangahub_sync_{suffix}"))
            backend = Backend(
                "postgres",
                tmp_path,
                database_url=url,
                redis_url=REDIS_URL,
                redis_namespace=f"mangahub-sync-{suffix}",
            )
        else:
            backend = Backend("sqlite", tmp_path)
        settings = backend.settings(seed_catalog=False, sync_lease_seconds=30)
        async with build_runtime(settings) as runtime:
            yield SyncEnv(backend, runtime)


@pytest.fixture
async def clients(fake: FakeSources) -> AsyncIterator[SourceClients]:
    """One client per source, as a process has: every job and worker shares them."""
    pair = SourceClients(
        mangadex=MangaDexClient(fake.mangadex_url, rate_per_second=500, burst=50, retry=FAST_RETRY),
        anilist=AniListClient(fake.anilist_url, requests_per_minute=60_000, retry=FAST_RETRY),
    )
    try:
        yield pair
    finally:
        await pair.aclose()


MakeRunner = Callable[..., SyncRunner]


@pytest.fixture
def make_runner(env: SyncEnv, clients: SourceClients) -> MakeRunner:
    def make(owner: str | None = None, runtime: Runtime | None = None) -> SyncRunner:
        return build_runner(runtime or env.runtime, clients, owner=owner)

    return make


async def register(runtime: Runtime, prefix: str = "reader") -> uuid.UUID:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    user = await runtime.auth.register(
        RegisterIn(username=name, email=f"{name}@example.com", password="correct-horse-battery")
    )
    return user.id


def chapter_entities(
    mangadex_id: str, numbers: list[str], language: str = "en"
) -> list[dict[str, Any]]:
    """Feed entries in MangaDex's real shape (a recorded chapter, re-numbered and
    re-owned), with fresh ids."""
    recorded = orjson.loads(
        (DATA / "mangadex" / "manga_feed_mob_psycho_limit100.json").read_bytes()
    )
    template = next(c for c in recorded["data"] if c["attributes"]["translatedLanguage"] == "en")
    out = []
    for number in numbers:
        entity = copy.deepcopy(template)
        entity["id"] = str(uuid.uuid4())
        entity["attributes"].update(
            chapter=number, translatedLanguage=language, title=f"Ch {number}"
        )
        for rel in entity["relationships"]:
            if rel["type"] == "manga":
                rel["id"] = mangadex_id
        out.append(entity)
    return out
