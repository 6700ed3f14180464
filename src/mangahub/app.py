"""Composition root: builds storage, cache, bus and services from settings.

Everything that holds a connection is created here and handed to the services
that need it; nothing below keeps a module-level connection.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from mangahub.bus import EventBus, MemoryBus, RedisBus
from mangahub.cache import Cache, MemoryCache, RedisCache
from mangahub.config import Settings, ensure_secrets
from mangahub.logs import apply_format as apply_log_format
from mangahub.metrics import MetricsEndpoint
from mangahub.privatefiles import create_exclusive
from mangahub.readmodels import CatalogReadModel
from mangahub.redislink import RedisLink, open_client
from mangahub.security.tokens import TokenCodec
from mangahub.services.auth import AuthService
from mangahub.services.catalog import CatalogService
from mangahub.services.chat import ChatService
from mangahub.services.federated import FederatedSearch
from mangahub.services.notifications import NotificationService
from mangahub.services.reading_list import ReadingListService
from mangahub.services.social import SocialService
from mangahub.sources.registry import SourceClients, build_source_clients
from mangahub.storage.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Runtime:
    """The live object graph one process serves from."""

    settings: Settings
    db: Database
    cache: Cache
    bus: EventBus
    redis: aioredis.Redis | None
    tokens: TokenCodec
    auth: AuthService
    catalog: CatalogService
    reading_list: ReadingListService
    social: SocialService
    notifications: NotificationService
    chat: ChatService
    federated: FederatedSearch
    # One client per enabled external source, shared by federated search and sync jobs.
    sources: SourceClients
    # Ready-to-send catalog answers of this process (see mangahub.readmodels).
    catalog_reads: CatalogReadModel
    # Set when this start created user ``admin`` with a generated password; shown by
    # ``serve`` once it is listening (a failed start must not show and lose it).
    generated_admin_password: str | None = None

    async def check_ready(self) -> dict[str, str]:
        """Reachability of each backing service: ``{"database": "ok", "redis": "ok"}``."""
        status: dict[str, str] = {}
        probes = [("database", self.db.ping)]
        if self.redis is not None:
            probes.append(("redis", self.cache.ping))
        for name, probe in probes:
            try:
                await probe()
                status[name] = "ok"
            except Exception as exc:  # readiness reports, it never raises
                status[name] = f"error: {type(exc).__name__}"
        return status


def admin_password_file(settings: Settings) -> Path:
    """Where a generated admin password is kept for the operator (mode 0600)."""
    return settings.data_dir / "admin_password"


@asynccontextmanager
async def build_runtime(settings: Settings, *, bootstrap: bool = True) -> AsyncIterator[Runtime]:
    """Open every resource, migrate and seed (when ``bootstrap``), and close it all on exit."""
    settings = ensure_secrets(settings)
    assert settings.jwt_secret is not None
    apply_log_format(settings.log_format)
    db = Database(settings.resolved_database_url)
    redis_client: aioredis.Redis | None = None
    link: RedisLink | None = None
    cache: Cache
    bus: EventBus
    if settings.redis_url:
        redis_client = open_client(settings.redis_url, settings.redis_timeout)
        # One link: cache and bus agree on whether Redis is there, and warn once.
        link = RedisLink(redis_client, timeout=settings.redis_timeout)
        cache = RedisCache(redis_client, settings.redis_namespace, link)
        bus = RedisBus(redis_client, settings.redis_namespace, link)
    else:
        cache = MemoryCache()
        bus = MemoryBus()
    tokens = TokenCodec(settings.jwt_secret.get_secret_value(), settings.access_token_ttl_seconds)
    metrics_endpoint: MetricsEndpoint | None = None
    catalog = CatalogService(db, cache, bus)
    catalog_reads = CatalogReadModel(db, bus)
    sources = build_source_clients(settings)
    runtime = Runtime(
        settings=settings,
        db=db,
        cache=cache,
        bus=bus,
        redis=redis_client,
        tokens=tokens,
        auth=AuthService(db, cache, tokens, settings),
        catalog=catalog,
        reading_list=ReadingListService(db, bus, catalog_reads),
        social=SocialService(db),
        notifications=NotificationService(db, bus),
        chat=ChatService(db, bus),
        federated=FederatedSearch(
            catalog,
            cache,
            sources.enabled,
            source_timeout=settings.federated_search_timeout_seconds,
            anonymous_per_minute=settings.federated_anonymous_per_minute,
        ),
        sources=sources,
        catalog_reads=catalog_reads,
    )
    try:
        if bootstrap:
            await db.migrate()
            if settings.seed_catalog:
                added = await catalog.seed_bundled()
                if added:
                    log.info("catalog: loaded %d bundled series", added)
            configured = (
                settings.admin_password.get_secret_value() if settings.admin_password else None
            )
            password = await runtime.auth.ensure_admin(configured)
            if (
                password is None
                and configured
                and await runtime.auth.admin_password_differs(configured)
            ):
                log.warning(
                    "admin_password is set but user 'admin' already exists with another "
                    "password, which is kept; to change it run `mangahub users "
                    "reset-password admin --password-from-config`"
                )
            if password is not None:
                # Kept for the operator (owner-only file) until they delete it.
                create_exclusive(admin_password_file(settings), password + "\n")
                runtime = dataclasses.replace(runtime, generated_admin_password=password)
        # Before bus.start(): their topic is subscribed then.
        await runtime.catalog_reads.start()
        await runtime.catalog.follow_changes()
        await bus.start()
        if settings.metrics_port is not None:
            metrics_endpoint = MetricsEndpoint(settings.host, settings.metrics_port)
            log.info("metrics listening on %s:%d", *metrics_endpoint.address)
        yield runtime
    finally:
        if metrics_endpoint is not None:
            metrics_endpoint.close()
        await sources.aclose()
        await bus.close()
        await cache.close()
        if link is not None:
            await link.close()
        if redis_client is not None:
            await redis_client.aclose()
        await db.close()
