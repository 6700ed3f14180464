"""gRPC benchmark: unary ``GetManga`` on MangaHub's gRPC door (``mangahub serve grpc``)
beside a bare ``grpc.aio`` servicer answering the same method with a fixed message,
measured in the same run, printed as ratios.

Both servers run as their own process on uvloop. Load comes from separate client
processes (``--workers``, default 2), each holding one channel (one HTTP/2
connection) and ``--streams / --workers`` coroutines that call ``GetManga`` back to
back (closed loop), so ``--streams`` (default 50) calls are in flight at all times.
Each id is drawn uniformly from the catalog; the baseline answers every call with
one real series (serialized once at start-up) of the catalog's median size, so the
bytes on the wire are alike. Rounds are interleaved (baseline, mangahub, mangahub,
baseline, ...) and the table shows medians over rounds.

MangaHub serves the bundled 500-series catalog from SQLite in a temp dir.

    .venv/bin/python bench/grpc_bench.py            # default run, about 1 minute
    .venv/bin/python bench/grpc_bench.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from common import (
    ClientProcess,
    ServerProc,
    free_port,
    logged,
    raise_fd_limit,
    ratio,
    server_process,
)

METHOD = "/mangahub.v1.MangaService/GetManga"


# --- baseline server ----------------------------------------------------------------------


async def serve_baseline(port: int, reply: bytes) -> None:
    """A bare grpc.aio server: GetManga answers ``reply`` (already serialized)."""
    import grpc

    async def get_manga(_request: bytes, _context: Any) -> bytes:
        return reply

    handler = grpc.method_handlers_generic_handler(
        "mangahub.v1.MangaService",
        {"GetManga": grpc.unary_unary_rpc_method_handler(get_manga)},  # bytes in, bytes out
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    print(f"baseline grpc listening on 127.0.0.1:{port}", flush=True)
    await stop
    await server.stop(1)


# --- client workers -----------------------------------------------------------------------


async def _round(port: int, streams: int, ids: list[int], seconds: float) -> dict[str, Any]:
    import grpc

    from mangahub.v1 import manga_pb2

    requests = [manga_pb2.GetMangaRequest(id=i).SerializeToString() for i in ids]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(METHOD)  # raw bytes: no client-side parsing cost
        await call(requests[0], timeout=10)  # connected before the clock starts
        clock = time.perf_counter
        end = clock() + seconds

        async def stream(seed: int) -> None:
            pick = random.Random(seed).choice
            while clock() < end:
                t0 = clock()
                try:
                    await call(pick(requests), timeout=10)
                except grpc.aio.AioRpcError as exc:
                    errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                    continue
                latencies.append(clock() - t0)

        started = clock()
        await asyncio.gather(*(stream(k) for k in range(streams)))
        elapsed = clock() - started
    return {"latencies": latencies, "elapsed": elapsed, "errors": errors}


def worker_main(pipe: Connection, streams: int, ids: list[int]) -> None:
    """Run a round whenever the driver asks (``("round", port, seconds)``)."""
    raise_fd_limit()
    import uvloop

    pipe.send(("ready", None))
    while (cmd := pipe.recv()) != "stop":
        _, port, seconds = cmd
        pipe.send(("round", uvloop.run(_round(port, streams, ids, seconds))))
    pipe.send(("done", None))


# --- servers ------------------------------------------------------------------------------


@contextlib.contextmanager
def start_server(name: str, workdir: Path, reply_file: Path) -> Iterator[ServerProc]:
    port = free_port()
    env = {**os.environ}
    if name == "mangahub":
        cmd = [sys.executable, "-m", "mangahub", "serve", "grpc"]
        env.update(
            MANGAHUB_DATA_DIR=str(workdir / "data"),
            MANGAHUB_HOST="127.0.0.1",
            MANGAHUB_GRPC_PORT=str(port),
            MANGAHUB_ADMIN_PASSWORD="bench-admin-password",
            MANGAHUB_LOG_LEVEL="WARNING",
        )
    else:
        cmd = [sys.executable, __file__, "--serve-baseline", str(port), str(reply_file)]
    log_path = workdir / f"{name}.log"
    with server_process(name, cmd, log_path, logged(log_path), env=env, cwd=workdir) as process:
        yield ServerProc(name, process, port)


def catalog_sample(workdir: Path) -> tuple[list[int], bytes]:
    """Every manga id of a freshly seeded catalog, and the median-size series as the
    baseline's reply (the data dir is then reused by the MangaHub server)."""
    from pydantic import SecretStr
    from sqlalchemy import select

    from mangahub.app import build_runtime
    from mangahub.config import Settings
    from mangahub.grpcapi.convert import manga_message
    from mangahub.storage.models import Manga

    async def work() -> tuple[list[int], bytes]:
        settings = Settings(
            data_dir=workdir / "data",
            redis_url=None,
            admin_password=SecretStr("bench-admin-password"),
            log_level="WARNING",
        )
        async with build_runtime(settings) as rt:
            async with rt.db.session() as session:
                ids = [int(i) for i in (await session.scalars(select(Manga.id))).all()]
            sizes = []
            for manga_id in ids:
                body = manga_message(await rt.catalog.get_manga(manga_id)).SerializeToString()
                sizes.append((len(body), body))
        sizes.sort()
        return ids, sizes[len(sizes) // 2][1]

    return asyncio.run(work())


# --- measurement --------------------------------------------------------------------------


@dataclass
class Rounds:
    name: str
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    calls: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def run_round(
    server: ServerProc, workers: list[ClientProcess], seconds: float, into: Rounds
) -> None:
    cpu0 = server.cpu_seconds()
    for w in workers:
        w.pipe.send(("round", server.port, seconds))
    answers = [w.expect("round", timeout=seconds + 60) for w in workers]
    cpu = server.cpu_seconds() - cpu0
    latencies = sorted(x for a in answers for x in a["latencies"])
    elapsed = max(a["elapsed"] for a in answers)
    if not latencies:
        raise RuntimeError(f"{server.name}: no successful call; errors {answers[0]['errors']}")
    into.rps.append(len(latencies) / elapsed)
    into.p50_ms.append(1000 * latencies[len(latencies) // 2])
    into.p99_ms.append(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))])
    into.cpu_us.append(1e6 * cpu / len(latencies))
    into.calls += len(latencies)
    for a in answers:
        for code, n in a["errors"].items():
            into.errors[code] = into.errors.get(code, 0) + n


def table(base: Rounds, app: Rounds, streams: int) -> str:
    med = statistics.median
    rows = [
        (f"GetManga calls/s ({streams} streams)", med(base.rps), med(app.rps), "{:,.0f}"),
        ("latency p50 (ms)", med(base.p50_ms), med(app.p50_ms), "{:.2f}"),
        ("latency p99 (ms)", med(base.p99_ms), med(app.p99_ms), "{:.2f}"),
        ("server CPU per call (µs)", med(base.cpu_us), med(app.cpu_us), "{:.0f}"),
    ]
    lines = [
        "| measure | bare grpc.aio | MangaHub gRPC | MangaHub ÷ bare |",
        "|---|---:|---:|---:|",
    ]
    for label, b, m, fmt in rows:
        lines.append(f"| {label} | {fmt.format(b)} | {fmt.format(m)} | {ratio(m, b)} |")
    lines.append(
        f"| calls measured / errors | {base.calls:,} / {sum(base.errors.values())} "
        f"| {app.calls:,} / {sum(app.errors.values())} |  |"
    )
    return "\n".join(lines)


def drive(a: argparse.Namespace) -> int:
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {text}", flush=True)

    with tempfile.TemporaryDirectory(prefix="mangahub-grpc-bench-") as tmp:
        workdir = Path(tmp)
        say("seeding the catalog")
        ids, reply = catalog_sample(workdir)
        reply_file = workdir / "reply.bin"
        reply_file.write_bytes(reply)
        say(f"{len(ids)} series; baseline reply {len(reply)} bytes")
        per_worker = [
            a.streams // a.workers + (k < a.streams % a.workers) for k in range(a.workers)
        ]
        workers = [ClientProcess(worker_main, n, ids) for n in per_worker]
        results = {"baseline": Rounds("baseline"), "mangahub": Rounds("mangahub")}
        try:
            for w in workers:
                w.expect("ready")
            with (
                start_server("baseline", workdir, reply_file) as base,
                start_server("mangahub", workdir, reply_file) as app,
            ):
                servers = {"baseline": base, "mangahub": app}
                for name, server in servers.items():
                    say(f"{name}: warm-up {a.warmup:.0f} s")
                    run_round(server, workers, a.warmup, Rounds(name))
                order = ["baseline", "mangahub", "mangahub", "baseline"]
                for r in range(a.rounds):
                    for name in (order[(2 * r) % 4], order[(2 * r + 1) % 4]):
                        say(f"round {r + 1}/{a.rounds}: {name} {a.seconds:.0f} s")
                        run_round(servers[name], workers, a.seconds, results[name])
        finally:
            for w in workers:
                w.finish()
    header = (
        f"gRPC GetManga, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"nproc {os.cpu_count()}, Python {platform.python_version()}, "
        f"{a.workers} client processes x {a.streams // a.workers} streams, "
        f"{a.rounds} rounds of {a.seconds:.0f} s per server"
    )
    print(f"\n{header}\n\n{table(results['baseline'], results['mangahub'], a.streams)}")
    errors = {n: r.errors for n, r in results.items() if r.errors}
    if errors:
        print(f"\nerrors: {errors}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=50, help="calls in flight, in all")
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured round")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds per server")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve-baseline", nargs=2, help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.serve_baseline:
        import uvloop

        port, reply_file = a.serve_baseline
        uvloop.run(serve_baseline(int(port), Path(reply_file).read_bytes()))
        return
    if a.quick:
        a.seconds, a.rounds, a.warmup = 3.0, 1, 1.0
    raise_fd_limit()
    sys.exit(drive(a))


if __name__ == "__main__":
    main()
