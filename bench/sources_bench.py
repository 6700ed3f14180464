"""Initial MangaDex import against the fake source: does the sync job use the whole
rate limit without ever breaking it?

The fake (tests/fakes/sources.py, in this process) serves the recorded MangaDex list
repeated with unique ids, so the import has many pages; every answer waits
``--latency`` seconds, like the real API. The job runs with the limiter at
``--rate`` requests/s (burst ``--burst``) and ``--workers`` page fetchers sharing the
one client. Measured from the fake's own request log:

- achieved sustained rate ÷ the limit (the baseline is the limit itself; aim ≥ 0.95),
  where sustained = (requests − burst) ÷ (last arrival − first arrival);
- requests that broke the limit: arrivals a token bucket of the same rate and burst
  (with 20 ms of clock slack) would have refused; must be 0;
- series imported per second (wall time of the whole job).

    .venv/bin/python bench/sources_bench.py            # ~30 s, crosses the 10,000 window
    .venv/bin/python bench/sources_bench.py --quick    # ~10 s smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fakes is the fake source

from tests.fakes.sources import FakeSources, RecordedRequest  # noqa: E402

from mangahub.app import build_runtime  # noqa: E402
from mangahub.config import Settings  # noqa: E402
from mangahub.sync.setup import build_runner  # noqa: E402

CLOCK_SLACK = 0.02  # seconds of arrival jitter forgiven (loopback, event-loop scheduling)


def repeat_catalog(fake: FakeSources, copies: int) -> int:
    """Serve the recorded list ``copies`` times over, each copy with fresh ids (and no
    AniList link, which would make copies the same series). Returns the series count."""
    originals = list(fake._data.manga.values())
    for n in range(1, copies):
        for entity in originals:
            clone = copy.deepcopy(entity)
            clone["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{entity['id']}/{n}"))
            clone["attributes"]["links"] = {}
            fake._data.manga[clone["id"]] = clone
    return len(fake._data.manga)


def broke_limit(arrivals: list[float], rate: float, burst: int) -> int:
    """Arrivals a token bucket (rate, burst) would have refused."""
    tokens, last, broken = float(burst), arrivals[0] if arrivals else 0.0, 0
    for at in arrivals:
        tokens = min(float(burst), tokens + (at - last) * rate)
        last = at
        if tokens < 1.0 - CLOCK_SLACK * rate:
            broken += 1
        else:
            tokens -= 1.0
    return broken


def sustained_rate(arrivals: list[float], burst: int) -> float:
    if len(arrivals) <= burst + 1:
        return 0.0
    return (len(arrivals) - burst) / (arrivals[-1] - arrivals[0])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with FakeSources() as fake:
        series = repeat_catalog(fake, args.copies)
        fake.delay("mangadex", args.latency)
        with tempfile.TemporaryDirectory() as data_dir:
            settings = Settings(
                data_dir=Path(data_dir),
                database_url=args.database_url,
                seed_catalog=False,
                admin_password="bench-admin-password",
                bcrypt_rounds=10,
                mangadex_url=fake.mangadex_url,
                mangadex_requests_per_second=args.rate,
                mangadex_burst=args.burst,
                sync_workers=args.workers,
            )
            async with build_runtime(settings) as runtime:
                runner = build_runner(runtime, runtime.sources)
                fake.requests.clear()
                started = time.perf_counter()
                outcome = await runner.run("mangadex_import")
                wall = time.perf_counter() - started
        requests: list[RecordedRequest] = fake.requests_to("mangadex")
    arrivals = sorted(r.at for r in requests)
    achieved = sustained_rate(arrivals, args.burst)
    return {
        "series_served": series,
        "series_imported": outcome.counts["series_seen"],
        "requests": len(requests),
        "non_200": sum(r.status != 200 for r in requests),
        "achieved_rps": achieved,
        "ratio": achieved / args.rate,
        "broke_limit": broke_limit(arrivals, args.rate, args.burst),
        "wall_s": wall,
        "series_per_s": outcome.counts["series_seen"] / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=5.0, help="limit, requests/s")
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument(
        "--copies", type=int, default=80, help="times the list is served (80: past the window)"
    )
    parser.add_argument("--latency", type=float, default=0.3, help="fake answer delay, s")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    args = parser.parse_args()
    if args.quick:
        args.copies = 10
    result = asyncio.run(run(args))
    print(
        f"limit {args.rate:g} req/s burst {args.burst}, {args.workers} workers, "
        f"fake latency {args.latency * 1000:.0f} ms, {result['series_served']} series served"
    )
    print(f"requests            {result['requests']} (non-200: {result['non_200']})")
    print(f"achieved rate       {result['achieved_rps']:.3f} req/s sustained")
    print(f"achieved / limit    {result['ratio']:.3f}")
    print(f"broke the limit     {result['broke_limit']}")
    print(
        f"imported            {result['series_imported']} series in {result['wall_s']:.1f} s "
        f"= {result['series_per_s']:.0f} series/s"
    )


if __name__ == "__main__":
    main()
