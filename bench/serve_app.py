"""The MangaHub bench server: the real runtime and FastAPI app, loaded with the
10,000-series benchmark catalog, on the same uvicorn config as the baseline.

    .venv/bin/python bench/serve_app.py --port 8091 --data-dir /tmp/mh-bench \\
        [--database-url postgresql+asyncpg://...] [--catalog bench/data/catalog_10k.json] \\
        [--ready-file F]

The catalog is imported once: a database that already holds >= --min-series manga is
served as is, so repeated runs against one data dir or PostgreSQL database skip the
import. The ready file (JSON) lists the manga ids the load generator may request.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func, select

from mangahub.app import Runtime, build_runtime
from mangahub.catalog.records import SeriesRecord
from mangahub.config import Settings
from mangahub.http.app import create_app
from mangahub.storage.models import Manga
from mangahub.warmup import settle, warm_up
from server_config import run, serve

DEFAULT_CATALOG = Path(__file__).resolve().parent / "data" / "catalog_10k.json"


def bench_settings(data_dir: Path, database_url: str | None) -> Settings:
    # Every value explicit: a developer's mangahub.toml or MANGAHUB_* variables
    # (Redis, a real database) must not leak into the benchmark.
    return Settings(
        host="127.0.0.1",
        data_dir=data_dir,
        database_url=database_url,
        redis_url=None,
        admin_password=SecretStr("bench-admin-password"),
        bcrypt_rounds=10,
        anilist_enabled=False,
        log_level="WARNING",
    )


async def manga_ids(runtime: Runtime) -> list[int]:
    async with runtime.db.session() as session:
        return list((await session.scalars(select(Manga.id).order_by(Manga.id))).all())


async def manga_count(runtime: Runtime) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count(Manga.id))) or 0)


def load_catalog(path: Path) -> list[SeriesRecord]:
    return [SeriesRecord.from_json(item) for item in json.loads(path.read_text("utf-8"))]


async def ensure_catalog(runtime: Runtime, catalog: Path, min_series: int) -> dict[str, Any]:
    """Import the bench catalog unless the database already holds enough series."""
    before = await manga_count(runtime)
    if before >= min_series:
        return {"imported": False, "import_seconds": 0.0, "count_before": before}
    records = load_catalog(catalog)
    start = time.perf_counter()
    result = await runtime.catalog.import_series(records)
    return {
        "imported": True,
        "import_seconds": round(time.perf_counter() - start, 2),
        "count_before": before,
        "import_result": repr(result),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="MangaHub benchmark server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--min-series", type=int, default=10_000)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()

    async def _main() -> None:
        settings = bench_settings(args.data_dir, args.database_url)
        async with build_runtime(settings) as runtime:
            info = await ensure_catalog(runtime, args.catalog, args.min_series)
            app = create_app(runtime)
            # As `mangahub serve` does before its doors open (run_servers(warm=True)).
            await warm_up(runtime, ["api"], app)
            settle()
            ids = await manga_ids(runtime)
            info.update(kind="mangahub", backend=runtime.db.dialect, count=len(ids), ids=ids)
            await serve(app, args.port, args.ready_file, info)

    run(_main)


if __name__ == "__main__":
    main()
