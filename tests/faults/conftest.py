"""Fixtures for fault injection: a private Redis and a private PostgreSQL cluster (so
stopping them never disturbs anybody else), ``mangahub serve`` processes on them, and
clients that record which writes were acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from mangahub.servers import PARTS
from mangahub.storage.database import Database
from mangahub.storage.models import Manga
from tests.conftest import ADMIN_PASSWORD, BACKEND
from tests.deploy.conftest import wait_for_listeners
from tests.faults.infra import PrivatePostgres, PrivateRedis, postgres_bindir
from tests.live_server import LiveServer, live_server, server_env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    skip = pytest.mark.skip(
        reason="fault injection needs the PostgreSQL + Redis backend "
        "(MANGAHUB_TEST_BACKEND=postgres); the embedded SQLite default has no service to lose"
    )
    for item in items:
        if BACKEND != "postgres" and here in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    if PrivateRedis.binary() is None:
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis(tmp_path_factory.mktemp("redis"))
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    # Not under pytest's 0700 temp root: the postgres user must be able to enter it.
    root = Path(tempfile.mkdtemp(prefix="mangahub-pg-"))
    pg = PrivatePostgres(bindir, root)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.destroy()


async def create_database(pg: PrivatePostgres) -> str:
    """A fresh database on the private cluster; its SQLAlchemy URL."""
    name = f"mangahub_fault_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg.admin_dsn(), timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return pg.url(name)


def fault_env(
    data_dir: Path,
    database_url: str,
    redis_url: str | None,
    namespace: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """Environment for ``mangahub serve`` (a fresh Redis namespace unless given one: on
    the shared Redis, pass the run's own, which is cleaned up at the end)."""
    return server_env(
        data_dir,
        database_url,
        redis_url,
        namespace or f"mangahub-fault-{uuid.uuid4().hex[:10]}",
        MANGAHUB_SEED_CATALOG="false",
        MANGAHUB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        MANGAHUB_LOG_LEVEL="WARNING",
        # The sync part must not reach out to the real catalog sources.
        MANGAHUB_MANGADEX_ENABLED="false",
        MANGAHUB_ANILIST_ENABLED="false",
        **extra,
    )


@contextlib.asynccontextmanager
async def serving(env: dict[str, str], *args: str) -> AsyncIterator[LiveServer]:
    """``mangahub serve ARGS`` started and stopped off the event loop."""
    wait_for = "tcp" if args == ("tcp",) else "http"
    manager = live_server(env, *args, wait_for=wait_for, startup_timeout=60)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        await asyncio.to_thread(wait_for_listeners, server, args or PARTS)
        yield server
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


async def create_manga(database_url: str, count: int) -> list[int]:
    """``count`` private series to write progress for (one per write: each acked write
    then has its own row to find afterwards)."""
    db = Database(database_url)
    try:
        async with db.session() as session:
            rows = [
                Manga(slug=f"fault-{uuid.uuid4().hex[:12]}", title="Fault test", status="ongoing")
                for _ in range(count)
            ]
            session.add_all(rows)
            await session.flush()
            return [row.id for row in rows]
    finally:
        await db.close()


async def register(http_url: str, prefix: str = "fault") -> tuple[str, str]:
    """A new user on a live server: ``(user_id, access_token)``."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    password = "correct-horse-battery"
    async with httpx.AsyncClient(base_url=http_url, timeout=30) as client:
        r = await client.post(
            "/api/auth/register",
            json={"username": name, "email": f"{name}@example.com", "password": password},
        )
        assert r.status_code == 201, r.text
        r = await client.post("/api/auth/login", json={"username": name, "password": password})
        assert r.status_code == 200, r.text
        body = r.json()
        return str(body["user"]["id"]), str(body["access_token"])


async def stored_progress(database_url: str, user_id: str) -> dict[int, float]:
    """manga id → stored chapter of one user, read straight from PostgreSQL."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT manga_id, chapter FROM reading_entries WHERE user_id = $1",
            uuid.UUID(user_id),
        )
    finally:
        await conn.close()
    return {int(r["manga_id"]): float(r["chapter"]) for r in rows}


class Stopwatch:
    """Seconds since a fault was injected or healed."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start
