"""Shared fixtures. The backend comes from MANGAHUB_TEST_BACKEND:

- ``sqlite`` (default): a fresh SQLite file, in-process cache and bus;
- ``postgres``: a fresh PostgreSQL database and a private Redis namespace, both
  dropped at the end of the run (so parallel runs never meet).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from mangahub.app import Runtime, build_runtime
from mangahub.bus import RedisBus
from mangahub.cache import RedisCache
from mangahub.config import Settings
from mangahub.http.app import create_app
from mangahub.redislink import RedisLink
from mangahub.redislink import open_client as open_redis
from tests.live_server import TEST_LIMITS, server_env

BACKEND = os.environ.get("MANGAHUB_TEST_BACKEND", "sqlite")
PG_ADMIN_DSN = os.environ.get("MANGAHUB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MANGAHUB_TEST_REDIS", "redis://127.0.0.1:6379/0")
ADMIN_PASSWORD = "admin-password-for-tests"


def pytest_report_header() -> str:
    return f"mangahub backend: {BACKEND}"


@dataclass
class Backend:
    """Where one test run keeps its state; `settings()` builds Settings pointing at it."""

    name: str
    data_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    redis_namespace: str = "mangahub"

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "data_dir": self.data_dir,
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "redis_namespace": self.redis_namespace,
            "admin_password": ADMIN_PASSWORD,
            "bcrypt_rounds": 10,
            "host": "127.0.0.1",
            # No test reaches the internet (an empty URL turns a source off); a test
            # that wants a source points it at the fake.
            "mangadex_url": "",
            "anilist_url": "",
            # Every test registers from 127.0.0.1; the per-address limits have their tests.
            **{name.lower(): int(value) for name, value in TEST_LIMITS.items()},
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    def process_env(self, **extra: str) -> dict[str, str]:
        """Environment for a ``mangahub serve`` subprocess sharing this run's database,
        bus and secrets (so tokens from ``make_user`` are valid there). The catalog is
        already loaded by the session runtime."""
        return server_env(
            self.data_dir,
            self.database_url,
            self.redis_url,
            self.redis_namespace,
            MANGAHUB_SEED_CATALOG="false",
            MANGAHUB_LOG_LEVEL="WARNING",
            **extra,
        )


@pytest.fixture(scope="session")
async def backend(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Backend]:
    data_dir = tmp_path_factory.mktemp("data")
    if BACKEND == "sqlite":
        yield Backend("sqlite", data_dir)
        return
    if BACKEND != "postgres":
        raise pytest.UsageError(f"unknown MANGAHUB_TEST_BACKEND {BACKEND!r}")
    suffix = uuid.uuid4().hex[:12]
    namespace = f"mangahub-test-{suffix}"
    try:
        async with postgres_database(f"mangahub_test_{suffix}") as database_url:
            yield Backend(
                "postgres",
                data_dir,
                database_url=database_url,
                redis_url=REDIS_URL,
                redis_namespace=namespace,
            )
    finally:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            keys = [k async for k in client.scan_iter(f"{namespace}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@pytest.fixture(scope="session")
async def runtime(backend: Backend) -> AsyncIterator[Runtime]:
    async with build_runtime(backend.settings()) as rt:
        yield rt


@pytest.fixture(scope="session")
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class UserSession:
    """A registered, logged-in user: its credentials, tokens and auth header."""

    id: str
    username: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


MakeUser = Callable[..., Awaitable[UserSession]]


@pytest.fixture
def make_user(client: httpx.AsyncClient) -> MakeUser:
    """Register and log in a fresh user with a unique name."""

    async def make(prefix: str = "reader", password: str = "correct-horse-battery") -> UserSession:
        username = f"{prefix}_{uuid.uuid4().hex[:10]}"
        email = f"{username}@example.com"
        r = await client.post(
            "/api/auth/register", json={"username": username, "email": email, "password": password}
        )
        assert r.status_code == 201, r.text
        r = await client.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        body = r.json()
        return UserSession(
            id=body["user"]["id"],
            username=username,
            email=email,
            password=password,
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
        )

    return make


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> UserSession:
    r = await client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return UserSession(
        id=body["user"]["id"],
        username="admin",
        email=body["user"]["email"],
        password=ADMIN_PASSWORD,
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
    )


@pytest.fixture(scope="session")
def repo_root() -> Iterator[Path]:
    yield Path(__file__).resolve().parent.parent


@asynccontextmanager
async def empty_database(directory: Path) -> AsyncIterator[str]:
    """URL of a new, empty database of the test backend (a file in ``directory`` on
    SQLite), dropped afterwards."""
    if BACKEND == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / f'fresh-{uuid.uuid4().hex[:8]}.db'}"
        return
    async with postgres_database(f"mangahub_catalog_{uuid.uuid4().hex[:12]}") as url:
        yield url


@asynccontextmanager
async def postgres_database(name: str) -> AsyncIterator[str]:
    """A new PostgreSQL database ``name`` (its SQLAlchemy URL), dropped afterwards."""
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    host = PG_ADMIN_DSN.rsplit("/", 1)[0].split("://", 1)[1]
    try:
        yield f"postgresql+asyncpg://{host}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def fresh_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the test backend, for things the shared one cannot show."""
    async with empty_database(tmp_path) as url:
        yield url


@asynccontextmanager
async def redis_parts(
    url: str, namespace: str, **bus_options: float
) -> AsyncIterator[tuple[RedisCache, RedisBus]]:
    """What one process builds from ``redis_url`` (see build_runtime), started."""
    client = open_redis(url)
    link = RedisLink(client)
    cache = RedisCache(client, namespace, link)
    bus = RedisBus(client, namespace, link, **bus_options)
    await bus.start()
    try:
        yield cache, bus
    finally:
        await bus.close()
        await link.close()
        await client.aclose()
