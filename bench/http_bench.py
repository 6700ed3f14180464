"""HTTP benchmark: MangaHub's GET /api/manga/{id} and GET /api/manga/advanced-search
over a 10,000-series catalog, each beside a bare Starlette baseline in the same run.

Three kinds of process, so the load generator never shares an interpreter with a server:

* ``serve_app.py`` - the real runtime + FastAPI app (SQLite in a temp dir by default),
* ``serve_baseline.py`` - a bare Starlette app, same uvicorn config, same paths,
* ``wrk`` - the load: N connections over 2 threads, randomized requests from a Lua
  script, latency percentiles reported by wrk itself.

For every scenario and concurrency both servers are warmed up, then measured in
rounds that alternate between them (baseline, app, app, baseline, ...); the app's
numbers are printed as ratios to the baseline's. The machine is shared and absolute
numbers drift; ratios of back-to-back rounds drift much less. See bench/README.md.

    .venv/bin/python bench/http_bench.py                   # default: ~3.5 minutes
    .venv/bin/python bench/http_bench.py --quick           # smoke run, ~40 s
    .venv/bin/python bench/http_bench.py --self-test       # baseline vs baseline
    .venv/bin/python bench/http_bench.py --database-url postgresql+asyncpg://...
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from request_mix import SEARCH_PATHS, Scenario, id_paths, search_paths
from wrk_runner import Load, WrkResult, lua_script, pin_to, run_wrk

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"
DEFAULT_CATALOG = DATA_DIR / "catalog_10k.json"


# --- servers ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    name: str,
    script: str,
    args: list[str],
    workdir: Path,
    cpus: set[int] | None,
    timeout: float,
) -> Server:
    port = free_port()
    ready = workdir / f"{name}.ready.json"
    log = workdir / f"{name}.log"
    ready.unlink(missing_ok=True)
    cmd = [sys.executable, str(BENCH_DIR / script), "--port", str(port), "--ready-file", str(ready)]
    with log.open("wb") as fh:
        process = subprocess.Popen(
            cmd + args, stdout=fh, stderr=subprocess.STDOUT, preexec_fn=pin_to(cpus)
        )
    server = Server(name, port, process, log)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{name} server did not start; log tail:\n{tail}")
        time.sleep(0.1)
    server.info = json.loads(ready.read_text())
    return server


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def probe(url: str) -> tuple[int, int]:
    """One request outside the load run: status and body size, to catch a broken
    route before wrk turns it into ten seconds of fast 404s."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, len(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, len(exc.read())


# --- the run ------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One server at one scenario and concurrency: its rounds and their medians."""

    scenario: str
    connections: int
    target: str
    rounds: list[WrkResult]

    def median(self, metric: Callable[[WrkResult], float]) -> float:
        return statistics.median(metric(r) for r in self.rounds)

    @property
    def rps(self) -> float:
        return self.median(lambda r: r.rps)

    @property
    def p50_ms(self) -> float:
        return self.median(lambda r: r.p50_ms)

    @property
    def p99_ms(self) -> float:
        return self.median(lambda r: r.p99_ms)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.rounds)


@dataclass(frozen=True)
class Plan:
    """How long each data point is measured."""

    rounds: int
    warmup: float
    max_duration: float


# A round should hold this many request cycles per connection: a run starts with every
# connection sending at once, and that start-up wave must be a small part of it.
CYCLES_PER_ROUND = 8


def measure(
    scenarios: list[Scenario], servers: list[Server], loads: list[Load], plan: Plan, workdir: Path
) -> list[Row]:
    rows: list[Row] = []
    for scenario in scenarios:
        slug = re.sub(r"\W+", "_", scenario.name).strip("_")
        script = workdir / f"{slug}.lua"
        script.write_text(lua_script(scenario.paths))
        check_routes(scenario, servers)
        for load in loads:
            results = measure_point(scenario, script, servers, load, plan)
            for server in servers:
                for i, (_, raw) in enumerate(results[server.name], 1):
                    name = f"wrk_{slug}_{load.connections}_{server.name}_r{i}.txt"
                    (workdir / name).write_text(raw)
            rows += [
                Row(scenario.name, load.connections, name, [r for r, _ in runs])
                for name, runs in results.items()
            ]
    return rows


def check_routes(scenario: Scenario, servers: list[Server]) -> None:
    """A broken route must fail the bench, not become ten seconds of fast 404s."""
    for server in servers:
        for path in scenario.paths[:3]:
            status, _ = probe(server.url + path)
            if status != 200:
                raise RuntimeError(f"{server.name} {path} -> HTTP {status}")


def measure_point(
    scenario: Scenario, script: Path, servers: list[Server], load: Load, plan: Plan
) -> dict[str, list[tuple[WrkResult, str]]]:
    """Warm both servers up, size the rounds from the warm-up, then run the rounds."""
    slowest_rps = float("inf")
    for server in servers:
        if plan.warmup > 0:
            warm, _ = run_wrk(server.url, script, replace(load, duration=plan.warmup))
            slowest_rps = min(slowest_rps, warm.rps or float("inf"))
            settle(server.url + scenario.paths[0])
    # Both servers get the same round length, long enough for the slower one.
    cycle_s = load.connections / slowest_rps
    duration = min(plan.max_duration, max(load.duration, CYCLES_PER_ROUND * cycle_s))
    load = replace(load, duration=duration)
    results: dict[str, list[tuple[WrkResult, str]]] = {server.name: [] for server in servers}
    # Rounds interleaved, alternating who goes first: a slow spell on the shared
    # machine hits both servers instead of biasing one of them.
    for round_no in range(plan.rounds):
        for server in servers if round_no % 2 == 0 else servers[::-1]:
            result, raw = run_wrk(server.url, script, load)
            results[server.name].append((result, raw))
            print(progress_line(scenario.name, load, server.name, result), file=sys.stderr)
            warn_if_transient(result, load)
            settle(server.url + scenario.paths[0])
    return results


def warn_if_transient(result: WrkResult, load: Load) -> None:
    """Every wrk run starts with all connections sending at once. A run in which each
    connection completes only a few requests is mostly that start-up wave, whose
    latencies are spread from 0 to one full cycle: its percentiles understate the
    steady state. Say so instead of printing the numbers as if they were final."""
    per_connection = result.requests / load.connections
    if per_connection < 5:
        print(
            f"    note: only {per_connection:.1f} requests per connection in this round; "
            "latency percentiles understate the steady state (use a longer --duration)",
            file=sys.stderr,
        )


def settle(url: str) -> None:
    """When wrk exits, a slow server may still be working off the requests of the
    connections it just lost; the next run must not start on a busy server. A probe
    queued behind that work returns once it is done."""
    with contextlib.suppress(OSError):  # a timeout here only means "still busy"
        probe(url)
    time.sleep(0.3)


def progress_line(scenario: str, load: Load, target: str, r: WrkResult) -> str:
    return (
        f"  {scenario} c={load.connections} {target} ({load.duration:.0f} s): {r.rps:,.0f} req/s "
        f"p50 {r.p50_ms:.2f} ms p99 {r.p99_ms:.2f} ms errors {r.errors}"
    )


TABLE_HEAD = (
    "scenario",
    "conns",
    "server",
    "req/s",
    "p50 ms",
    "p99 ms",
    "bytes/resp",
    "errors",
    "rps ratio",
    "p50 ratio",
    "p99 ratio",
    "rps ratio by round",
)


def table(rows: list[Row], markdown: bool = False) -> str:
    """Absolute columns are medians over rounds. Ratio columns are the median of the
    per-round paired ratios (app round i / baseline round i, measured back to back),
    which cancels drift shared by the pair; the last column lists the paired rps
    ratios, whose spread is this run's noise."""
    body: list[list[str]] = []
    baseline: dict[tuple[str, int], Row] = {}
    for row in rows:
        cells = [
            row.scenario,
            str(row.connections),
            row.target,
            f"{row.rps:,.0f}",
            f"{row.p50_ms:.2f}",
            f"{row.p99_ms:.2f}",
            f"{row.rounds[0].bytes_per_response:,.0f}",
            str(row.errors),
        ]
        key = (row.scenario, row.connections)
        base = baseline.get(key)
        if row.target == "baseline" or base is None:
            baseline.setdefault(key, row)
            cells += [""] * 4
        else:
            rps = paired_ratios(row, base, lambda r: r.rps)
            cells += [
                f"{statistics.median(rps):.3f}x",
                f"{statistics.median(paired_ratios(row, base, lambda r: r.p50_ms)):.3f}x",
                f"{statistics.median(paired_ratios(row, base, lambda r: r.p99_ms)):.3f}x",
                " ".join(f"{x:.2f}" for x in rps),
            ]
        body.append(cells)
    head = list(TABLE_HEAD)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i < 3 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*cells).rstrip() for cells in [head, *body])


def paired_ratios(row: Row, base: Row, metric: Callable[[WrkResult], float]) -> list[float]:
    pairs = zip(row.rounds, base.rounds, strict=True)
    return [metric(a) / metric(b) if metric(b) else float("nan") for a, b in pairs]


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    wrk = command_output(["wrk", "--version"]).split(" Copyright")[0]
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": wrk,
        "revision": source_revision(),
    }


def command_output(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=BENCH_DIR)
    except OSError:
        return ""
    lines = (proc.stdout or proc.stderr).splitlines()
    return lines[0].strip() if lines else ""


def source_revision() -> str:
    """The commit measured, and whether src/ had uncommitted changes: numbers are only
    comparable for the same code."""
    commit = command_output(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = command_output(["git", "status", "--porcelain", "--", "../src"])
    return f"{commit}{' + uncommitted src changes' if dirty else ''}"


def ensure_catalog(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        sys.path.insert(0, str(BENCH_DIR))
        import build_catalog

        build_catalog.main(["--out", str(path)])
    catalog: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))
    return catalog


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured round")
    p.add_argument(
        "--max-duration",
        type=float,
        default=30.0,
        help=f"cap on a round stretched to {CYCLES_PER_ROUND} request cycles per connection",
    )
    p.add_argument("--rounds", type=int, default=2, help="measured rounds per server and point")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    p.add_argument("--connections", default="50,200", help="comma list of concurrencies")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--scenarios", default="id,search", help="comma list: id, search")
    p.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    p.add_argument("--data-dir", type=Path, help="keep the app's data dir (reuse the import)")
    p.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    p.add_argument("--quick", action="store_true", help="smoke run: one 3 s round, 1 s warm-up")
    p.add_argument(
        "--self-test", action="store_true", help="a second baseline stands in for the app"
    )
    p.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pin the servers to the first CPU and wrk to the others (default: on)",
    )
    p.add_argument(
        "--stagger-ms",
        type=int,
        default=300,
        help="idle time before each connection's first request (0: off)",
    )
    p.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    p.add_argument("--start-timeout", type=float, default=600.0, help="seconds for import")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds, args.max_duration = 3.0, 1.0, 1, 3.0
    return args


def start_target(
    args: argparse.Namespace, workdir: Path, app_data: Path, cpus: set[int] | None
) -> Server:
    if args.self_test:
        return start_server("baseline2", "serve_baseline.py", [], workdir, cpus, 30)
    app_args = ["--data-dir", str(app_data), "--catalog", str(args.catalog)]
    if args.database_url:
        app_args += ["--database-url", args.database_url]
    app = start_server("mangahub", "serve_app.py", app_args, workdir, cpus, args.start_timeout)
    print(
        f"mangahub: {app.info['count']} series on {app.info['backend']}, "
        f"import {app.info['import_seconds']} s",
        file=sys.stderr,
    )
    return app


def build_scenarios(
    names: str, ids: Sequence[int], catalog: list[dict[str, Any]]
) -> list[Scenario]:
    builders: dict[str, Callable[[], Scenario]] = {
        "id": lambda: Scenario("manga/{id}", id_paths(ids)),
        "search": lambda: Scenario("advanced-search", search_paths(catalog, SEARCH_PATHS)),
    }
    return [builders[name]() for name in names.split(",")]


def report(
    rows: list[Row], args: argparse.Namespace, target: dict[str, Any], pinned: bool
) -> dict[str, Any]:
    info = machine_info()
    backend = "self-test (baseline vs baseline)" if args.self_test else target.get("backend")
    print(
        f"\n{info['date_utc']} | {info['nproc']} CPUs {info['cpu']} | Python {info['python']} | "
        f"revision {info['revision']} | "
        f"{info['wrk']} | backend {backend} | {target.get('count', 'n/a')} series | "
        f"{args.rounds} rounds of {args.duration:g}-{args.max_duration:g} s after "
        f"{args.warmup:g} s warm-up | "
        f"{args.threads} wrk threads | stagger {args.stagger_ms} ms"
        f"{' | servers pinned to 1 CPU, wrk to the rest' if pinned else ''}"
    )
    print(table(rows))
    if args.markdown:
        print()
        print(table(rows, markdown=True))
    return {
        "machine": info,
        "backend": backend,
        "target": target,
        "args": {k: str(v) for k, v in vars(args).items()},
        "rows": [
            {**asdict(r), "median": {"rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms}}
            for r in rows
        ],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    catalog = ensure_catalog(args.catalog)
    cpus = sorted(os.sched_getaffinity(0))
    # One CPU for the server under test, the rest for wrk: on a small machine, wrk
    # threads preempting the single-threaded server add noise that is not the app's.
    server_cpus = {cpus[0]} if args.pin and len(cpus) > 1 else None
    wrk_cpus = set(cpus[1:]) if server_cpus else None
    loads = [
        Load(int(c), args.threads, args.duration, args.stagger_ms, wrk_cpus)
        for c in args.connections.split(",")
    ]

    workdir = DATA_DIR / f"run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    workdir.mkdir(parents=True)
    app_data = args.data_dir or Path(tempfile.mkdtemp(prefix="mangahub-bench-"))
    print(f"run dir {workdir}; app data {app_data}", file=sys.stderr)
    started = time.monotonic()
    servers: list[Server] = []
    try:
        with running(servers):
            servers.append(
                start_server("baseline", "serve_baseline.py", [], workdir, server_cpus, 30)
            )
            target = start_target(args, workdir, app_data, server_cpus)
            servers.append(target)
            ids = target.info.get("ids") or list(range(1, len(catalog) + 1))
            scenarios = build_scenarios(args.scenarios, ids, catalog)
            plan = Plan(args.rounds, args.warmup, args.max_duration)
            rows = measure(scenarios, servers, loads, plan, workdir)
    finally:
        if args.data_dir is None:
            shutil.rmtree(app_data, ignore_errors=True)

    target_info = {k: v for k, v in target.info.items() if k != "ids"}
    summary = report(rows, args, target_info, server_cpus is not None)
    summary["elapsed_s"] = round(time.monotonic() - started, 1)
    (workdir / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"\nresults: {workdir / 'results.json'} ({summary['elapsed_s']} s)", file=sys.stderr)
    bad = [r for r in rows if r.errors]
    if bad:
        print(f"WARNING: {len(bad)} runs had errors (non-2xx/socket/timeouts)", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
