"""First-start catalog load: ``seed_bundled`` on a fresh, migrated database.

Baseline: the 500-series MangaDex catalog of earlier releases loaded through the same
importer; measured: the bundled catalog. Also times the upgrade of a database holding
the old 500 (one admin edit, one delete) and a forced re-run (changes nothing).

    .venv/bin/python bench/seed_bench.py [--backend sqlite|postgres|both] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from mangahub.cache import MemoryCache
from mangahub.catalog.build import MANGADEX_SEED_JSON, mangadex_seed_records
from mangahub.services.catalog import CatalogService
from mangahub.storage.database import Database

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


@asynccontextmanager
async def fresh_database(backend: str) -> AsyncIterator[Database]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db")
            try:
                await db.migrate()
                yield db
            finally:
                await db.close()
        return
    name = f"mangahub_seedbench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    db = Database(PG_URL.format(name=name))
    try:
        await db.migrate()
        yield db
    finally:
        await db.close()
        admin = await asyncpg.connect(PG_ADMIN, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def timed(backend: str, work: Callable[[CatalogService], Awaitable[object]]) -> float:
    async with fresh_database(backend) as db:
        service = CatalogService(db, MemoryCache())
        start = time.perf_counter()
        await work(service)
        return time.perf_counter() - start


async def old_seed(service: CatalogService) -> None:
    await service.import_series(
        mangadex_seed_records(ROOT / "datasets/catalog" / MANGADEX_SEED_JSON)
    )


async def upgrade_timings(backend: str) -> tuple[float, float, int, int]:
    async with fresh_database(backend) as db:
        service = CatalogService(db, MemoryCache())
        await old_seed(service)
        start = time.perf_counter()
        added = await service.seed_bundled()
        upgrade = time.perf_counter() - start
        start = time.perf_counter()
        again = await service.seed_bundled(force=True)
        rerun = time.perf_counter() - start
        return upgrade, rerun, added, again


async def run(backend: str, runs: int) -> None:
    base = [await timed(backend, old_seed) for _ in range(runs)]
    new = [await timed(backend, lambda s: s.seed_bundled()) for _ in range(runs)]
    b, n = statistics.median(base), statistics.median(new)
    print(
        f"{backend:8} fresh load: old 500 series {b:.2f} s, bundled catalog {n:.2f} s "
        f"(ratio {n / b:.1f}x, median of {runs})"
    )
    upgrade, rerun, added, again = await upgrade_timings(backend)
    print(
        f"{backend:8} upgrade from the old 500: {upgrade:.2f} s, {added} series added; "
        f"forced re-run {rerun:.2f} s, {again} added"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    for backend in backends:
        asyncio.run(run(backend, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
