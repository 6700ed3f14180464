"""TCP progress-sync benchmark: MangaHub's TCP door (``mangahub serve tcp``) beside a
bare asyncio JSON-lines fan-out server, measured in the same run, printed as ratios.

Measured for each server, with the same client code:

* **held connections** - 100 users x 10 devices = 1,000 authenticated connections
  (each answered ``auth_ok``); server VmRSS before and while held -> RSS/connection;
* **update-to-push latency** - on those held connections, one device of a user sends
  a ``progress_update``; the time until all 9 other devices have the ``progress``
  push (p50/p99). One update in flight per client process, paced;
* **capacity: acked updates/s** - 1,500 other users x 2 devices = 3,000 writers, each
  sending ``progress_update`` at <= 45/s (under SPEC's 50/s per-connection limit) with
  at most ``--window`` unanswered, for a fixed time: 135,000 updates/s offered, more than
  either server answers on this box, so acks received inside the window / seconds is
  the server's capacity (the table says when a server kept up with the offer, i.e.
  was not saturated, and the number then is only the offer). Each update is also
  pushed to the user's other device. Server CPU per acked update over the same phase.

The MangaHub server is the real CLI (``python -m mangahub serve tcp``) over SQLite in a
temp dir; users are registered and tokens signed with the server's own secret before
it starts. The baseline (``--serve-baseline``) has no auth check, no storage, no bus:
``auth`` -> ``auth_ok``, ``progress_update`` -> ``ack`` plus one ``progress`` line to
every other connection of the same "user" (the token). Clients run in separate
processes (``multiprocessing``, uvloop); one system-wide monotonic clock.

    .venv/bin/python bench/tcp_bench.py            # default run, about 2 minutes
    .venv/bin/python bench/tcp_bench.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from common import (
    ClientProcess,
    ServerProc,
    free_port,
    logged,
    raise_fd_limit,
    ratio,
    server_process,
)

ROOT = Path(__file__).resolve().parent.parent


# --- baseline server ----------------------------------------------------------------------


async def serve_baseline(port: int) -> None:
    users: dict[str, set[asyncio.StreamWriter]] = {}
    version = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        user: str | None = None
        try:
            while line := await reader.readline():
                msg = orjson.loads(line)
                kind = msg.get("type")
                if kind == "auth":
                    user = str(msg["token"])
                    users.setdefault(user, set()).add(writer)
                    writer.write(
                        orjson.dumps({"type": "auth_ok", "session_id": "s", "user_id": user})
                        + b"\n"
                    )
                elif kind == "progress_update" and user is not None:
                    version[0] += 1
                    data = {**msg["data"], "version": version[0], "device": "d"}
                    writer.write(
                        orjson.dumps({"type": "ack", "id": msg["id"], "progress": data}) + b"\n"
                    )
                    push = orjson.dumps({"type": "progress", "data": data}) + b"\n"
                    for other in users[user]:
                        if other is not writer:
                            other.write(push)
                elif kind == "ping":
                    writer.write(b'{"type":"pong"}\n')
                await writer.drain()
        except (ConnectionError, ValueError):
            pass
        finally:
            if user is not None:
                users[user].discard(writer)
            writer.close()

    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=1 << 16, backlog=2048)
    print(f"baseline tcp listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await stop


# --- client workers -----------------------------------------------------------------------


class Conn:
    """One device: a stream pair and a reader task dispatching lines."""

    def __init__(self, user: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.user = user
        self.reader = reader
        self.writer = writer
        self.task: asyncio.Task[None] | None = None


async def _connect(port: int, user: int, token: str, device: str) -> Conn:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 17)
    writer.write(orjson.dumps({"type": "auth", "token": token, "device": device}) + b"\n")
    reply = orjson.loads(await reader.readline())
    if reply.get("type") != "auth_ok":
        raise RuntimeError(f"auth failed: {reply}")
    return Conn(user, reader, writer)


async def _open_all(port: int, plan: list[tuple[int, str, int]]) -> list[Conn]:
    gate = asyncio.Semaphore(50)

    async def one(user: int, token: str, dev: int) -> Conn:
        async with gate:
            return await _connect(port, user, token, f"dev{dev}")

    return list(await asyncio.gather(*(one(u, t, d) for u, t, d in plan)))


async def _recv(pipe: Connection) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, pipe.recv)


async def _worker(pipe: Connection, port: int, plan: list[tuple[int, str, int]]) -> None:
    """Hold ``plan``'s connections, then run the commands the driver sends."""
    conns = await _open_all(port, plan)
    by_user: dict[int, list[Conn]] = {}
    for c in conns:
        by_user.setdefault(c.user, []).append(c)
    waiting: dict[float, tuple[int, asyncio.Future[float]]] = {}  # chapter -> remaining
    counters = {"acks": 0, "errors": 0, "pushes": 0, "counting": 1}
    codes: dict[str, int] = {}
    ack_events: dict[int, asyncio.Event] = {}

    async def read(c: Conn) -> None:
        clock = time.monotonic
        while line := await c.reader.readline():
            now = clock()
            msg = orjson.loads(line)
            kind = msg["type"]
            if kind == "progress":
                counters["pushes"] += 1
                entry = waiting.get(msg["data"]["chapter"])
                if entry is not None:
                    left, fut = entry
                    if left <= 1:
                        del waiting[msg["data"]["chapter"]]
                        if not fut.done():
                            fut.set_result(now)
                    else:
                        waiting[msg["data"]["chapter"]] = (left - 1, fut)
            elif kind == "ack":
                if counters["counting"]:
                    counters["acks"] += 1
                ev = ack_events.get(id(c))
                if ev is not None:
                    ev.set()
            elif kind == "error":
                counters["errors"] += 1
                code = str(msg.get("code", "?"))
                codes[code] = codes.get(code, 0) + 1
                ev = ack_events.get(id(c))
                if ev is not None:
                    ev.set()

    for c in conns:
        c.task = asyncio.create_task(read(c))
    pipe.send(("ready", len(conns)))
    loop = asyncio.get_running_loop()
    while (cmd := await _recv(pipe)) != "stop":
        if cmd[0] == "latency":
            _, count, rate, manga_ids, base = cmd
            lat: list[float] = []
            missing = 0
            users = sorted(by_user)
            start = loop.time()
            for i in range(count):
                await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
                devices = by_user[users[i % len(users)]]
                chapter = float(base + i)
                fut: asyncio.Future[float] = loop.create_future()
                waiting[chapter] = (len(devices) - 1, fut)
                update = {
                    "type": "progress_update",
                    "id": i,
                    "data": {
                        "manga_id": manga_ids[i % len(manga_ids)],
                        "chapter": chapter,
                        "status": "reading",
                    },
                }
                t0 = time.monotonic()
                devices[0].writer.write(orjson.dumps(update) + b"\n")
                try:
                    lat.append(1000 * (await asyncio.wait_for(fut, 5.0) - t0))
                except TimeoutError:
                    missing += 1
                    waiting.pop(chapter, None)
            pipe.send(("latency", {"ms": lat, "missing": missing, "codes": dict(codes)}))
        elif cmd[0] == "throughput":
            _, seconds, rate, window, manga_ids, go_at = cmd
            pipe.send(
                ("throughput", await _throughput(conns, seconds, rate, window, manga_ids, go_at))
            )
    for c in conns:
        if c.task is not None:
            c.task.cancel()
        c.writer.close()
    pipe.send(("done", None))


async def _throughput(
    conns: list[Conn], seconds: float, rate: float, window: int, manga_ids: list[int], go_at: float
) -> dict[str, Any]:
    """Every connection writes at ``rate``/s with at most ``window`` unanswered updates."""
    loop = asyncio.get_running_loop()
    counters = {"acks": 0, "errors": 0, "pushes": 0, "counting": 1, "sent": 0}
    codes: dict[str, int] = {}
    answered: dict[int, int] = {}
    events: dict[int, asyncio.Event] = {id(c): asyncio.Event() for c in conns}
    old = [c.task for c in conns if c.task is not None]
    for task in old:
        task.cancel()
    await asyncio.gather(*old, return_exceptions=True)

    async def read(c: Conn) -> None:
        ev = events[id(c)]
        while line := await c.reader.readline():
            msg = orjson.loads(line)
            kind = msg["type"]
            if kind == "ack":
                answered[id(c)] = answered.get(id(c), 0) + 1
                if counters["counting"]:
                    counters["acks"] += 1
                ev.set()
            elif kind == "error":
                answered[id(c)] = answered.get(id(c), 0) + 1
                counters["errors"] += 1
                code = str(msg.get("code", "?"))
                codes[code] = codes.get(code, 0) + 1
                ev.set()
            elif kind == "progress":
                counters["pushes"] += 1

    async def write(c: Conn, k: int) -> None:
        ev = events[id(c)]
        t_start = loop.time()
        n = 0
        while (t := loop.time()) - t_start < seconds:
            await asyncio.sleep(max(0.0, t_start + n / rate - t))
            while n - answered.get(id(c), 0) >= window:
                ev.clear()
                await ev.wait()
            update = {
                "type": "progress_update",
                "id": n,
                "data": {
                    "manga_id": manga_ids[(k + n) % len(manga_ids)],
                    "chapter": float(n % 100_000),
                    "status": "reading",
                },
            }
            c.writer.write(orjson.dumps(update) + b"\n")
            n += 1
            counters["sent"] += 1

    for c in conns:
        c.task = asyncio.create_task(read(c))
    await asyncio.sleep(max(0.0, go_at - time.monotonic()))
    writers = [asyncio.create_task(write(c, k)) for k, c in enumerate(conns)]
    await asyncio.sleep(seconds)
    counters["counting"] = 0
    acks_in_window = counters["acks"]
    await asyncio.wait(writers, timeout=5)
    await asyncio.sleep(1.0)
    acks_total = sum(answered.values()) - counters["errors"]
    return {**counters, "acks": acks_in_window, "acks_total": acks_total, "codes": codes}


def worker_main(pipe: Connection, port: int, plan: list[tuple[int, str, int]]) -> None:
    raise_fd_limit()
    import uvloop

    uvloop.run(_worker(pipe, port, plan))


# --- servers ------------------------------------------------------------------------------


@contextlib.contextmanager
def start_server(name: str, workdir: Path, data_dir: Path) -> Iterator[ServerProc]:
    port = free_port()
    env = {**os.environ}
    if name == "mangahub":
        cmd = [sys.executable, "-m", "mangahub", "serve", "tcp"]
        env.update(
            MANGAHUB_DATA_DIR=str(data_dir),
            MANGAHUB_HOST="127.0.0.1",
            MANGAHUB_TCP_PORT=str(port),
            MANGAHUB_BCRYPT_ROUNDS="10",
            MANGAHUB_LOG_LEVEL="WARNING",
        )
    else:
        cmd = [sys.executable, __file__, "--serve-baseline", str(port)]
    log_path = workdir / f"{name}.log"
    with server_process(name, cmd, log_path, logged(log_path), env=env, cwd=workdir) as process:
        yield ServerProc(name, process, port)


async def prepare_mangahub(data_dir: Path, users: int) -> tuple[list[str], list[int]]:
    """Create ``users`` accounts; sign their tokens with the server's own secret. The
    first is registered; the others share its password hash (bcrypt would take
    minutes for a thousand accounts)."""
    from pydantic import SecretStr
    from sqlalchemy import select

    from mangahub.app import build_runtime
    from mangahub.config import Settings
    from mangahub.domain.enums import Role
    from mangahub.domain.schemas import RegisterIn
    from mangahub.security.tokens import Principal
    from mangahub.storage.models import Manga, User

    settings = Settings(
        data_dir=data_dir,
        bcrypt_rounds=10,
        redis_url=None,
        admin_password=SecretStr("bench-admin-password"),
        log_level="WARNING",
    )
    async with build_runtime(settings) as rt:
        first = await rt.auth.register(
            RegisterIn(username="tcpb0000", email="t0@example.com", password="x" * 12)
        )
        async with rt.db.session() as session:
            hashed = await session.scalar(select(User.password_hash).where(User.id == first.id))
            assert hashed is not None
            session.add_all(
                User(username=f"tcpb{i:04d}", email=f"t{i}@example.com", password_hash=hashed)
                for i in range(1, users)
            )
        async with rt.db.session() as session:
            accounts = (await session.execute(select(User.id, User.username, User.email))).all()
            by_name = {username: (user_id, email) for user_id, username, email in accounts}
            # Ongoing series (no known chapter count): any chapter 0-100,000 is valid.
            query = select(Manga.id).where(Manga.total_chapters.is_(None)).order_by(Manga.id)
            ids = list((await session.scalars(query)).all())
        tokens = []
        for i in range(users):
            user_id, email = by_name[f"tcpb{i:04d}"]
            tokens.append(rt.tokens.issue(Principal(user_id, f"tcpb{i:04d}", email, Role.USER)))
    if not ids:
        raise RuntimeError("no ongoing manga in the seeded catalog")
    return tokens, [int(x) for x in ids[:50]]


# --- measurement --------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    held: int = 0
    rss_before_kib: int = 0
    rss_held_kib: int = 0
    latency_ms: list[float] = field(default_factory=list)
    latency_missing: int = 0
    tp_acks: int = 0
    tp_sent: int = 0
    tp_errors: int = 0
    tp_pushes: int = 0
    tp_seconds: float = 0.0
    tp_cpu: float = 0.0
    tp_acks_total: int = 0
    tp_writers: int = 0
    codes: dict[str, int] = field(default_factory=dict)

    @property
    def rss_per_conn(self) -> float:
        return (self.rss_held_kib - self.rss_before_kib) / max(1, self.held)

    def p(self, q: float) -> float:
        d = sorted(self.latency_ms)
        return d[min(len(d) - 1, int(q * len(d)))] if d else float("nan")

    @property
    def acks_per_s(self) -> float:
        return self.tp_acks / self.tp_seconds if self.tp_seconds else 0.0


def plan_for(tokens: list[str], devices: int, workers: int) -> list[list[tuple[int, str, int]]]:
    """All devices of a user in the same worker (so its latency is timed in-process)."""
    plans: list[list[tuple[int, str, int]]] = [[] for _ in range(workers)]
    for u, tok in enumerate(tokens):
        plans[u % workers].extend((u, tok, d) for d in range(devices))
    return plans


def measure(
    server: ServerProc,
    tokens: list[str],
    writer_tokens: list[str],
    ids: list[int],
    a: argparse.Namespace,
) -> Result:
    r = Result(server.name)
    warm = ClientProcess(
        worker_main, server.port, plan_for(tokens[:2], 2, 1)[0]
    )  # warm up lazy imports
    warm.expect("ready")
    warm.finish()
    time.sleep(0.5)
    r.rss_before_kib = server.rss_kib()
    group = [
        ClientProcess(worker_main, server.port, p) for p in plan_for(tokens, a.devices, a.workers)
    ]
    r.held = sum(w.expect("ready", 120) for w in group)
    time.sleep(1.0)
    r.rss_held_kib = server.rss_kib()
    per = a.updates // a.workers
    for k, w in enumerate(group):
        w.pipe.send(("latency", per, a.latency_rate / a.workers, ids, 10_000 + k * per))
    for w in group:
        got = w.expect("latency", 120)
        r.latency_ms += got["ms"]
        r.latency_missing += got["missing"]
        for k, v in got["codes"].items():
            r.codes[f"latency:{k}"] = r.codes.get(f"latency:{k}", 0) + v
    for w in group:
        w.finish()
    time.sleep(0.5)
    group = [
        ClientProcess(worker_main, server.port, p)
        for p in plan_for(writer_tokens, a.writer_devices, a.workers)
    ]
    r.tp_writers = sum(w.expect("ready", 120) for w in group)
    go = time.monotonic() + 0.5
    cpu0 = server.cpu_seconds()
    for w in group:
        w.pipe.send(("throughput", a.seconds, a.rate, a.window, ids, go))
    for w in group:
        got = w.expect("throughput", a.seconds + 60)
        r.tp_acks += got["acks"]
        r.tp_sent += got["sent"]
        r.tp_acks_total += got["acks_total"]
        r.tp_errors += got["errors"]
        r.tp_pushes += got["pushes"]
        for k, v in got["codes"].items():
            r.codes[f"throughput:{k}"] = r.codes.get(f"throughput:{k}", 0) + v
    r.tp_cpu = server.cpu_seconds() - cpu0
    r.tp_seconds = a.seconds
    for w in group:
        w.finish()
    return r


def table(b: Result, m: Result, a: argparse.Namespace) -> str:
    offered = m.tp_writers * a.rate
    rows = [
        (f"held connections ({a.users} users x {a.devices})", f"{b.held}", f"{m.held}", ""),
        (
            "server RSS per connection (KiB)",
            f"{b.rss_per_conn:.1f}",
            f"{m.rss_per_conn:.1f}",
            ratio(m.rss_per_conn, b.rss_per_conn),
        ),
        (
            f"update -> push to all {a.devices - 1} other devices, p50 (ms)",
            f"{b.p(0.5):.2f}",
            f"{m.p(0.5):.2f}",
            ratio(m.p(0.5), b.p(0.5)),
        ),
        (
            f"update -> push to all {a.devices - 1} other devices, p99 (ms)",
            f"{b.p(0.99):.2f}",
            f"{m.p(0.99):.2f}",
            ratio(m.p(0.99), b.p(0.99)),
        ),
        (
            f"acked updates/s ({m.tp_writers} writers, <= {a.rate:g}/s each: "
            f"{offered:,.0f}/s offered)",
            f"{b.acks_per_s:,.0f}",
            f"{m.acks_per_s:,.0f}",
            ratio(m.acks_per_s, b.acks_per_s),
        ),
        (
            "server CPU per acked update (µs)",
            f"{1e6 * b.tp_cpu / max(1, b.tp_acks_total):.1f}",
            f"{1e6 * m.tp_cpu / max(1, m.tp_acks_total):.1f}",
            ratio(m.tp_cpu / max(1, m.tp_acks_total), b.tp_cpu / max(1, b.tp_acks_total)),
        ),
    ]
    lines = [
        "| measure | bare asyncio JSON-lines | MangaHub TCP | MangaHub ÷ bare |",
        "|---|---:|---:|---:|",
        *(f"| {x} | {y} | {z} | {w} |" for x, y, z, w in rows),
    ]
    kept_up = [r.name for r in (b, m) if r.acks_per_s >= 0.95 * r.tp_writers * a.rate]
    saturation = (
        f"NOT SATURATED ({', '.join(kept_up)} kept up with the offer: that number is only "
        "the offer, not a capacity; raise --writer-users)"
        if kept_up
        else "both saturated (each acked less than the offer: the numbers are capacities)"
    )
    notes = (
        f"capacity phase: {saturation}; latency: {len(m.latency_ms)}/{len(b.latency_ms)} "
        f"updates (MangaHub/bare) at "
        f"{a.latency_rate:g}/s total, missing MangaHub {m.latency_missing}, bare "
        f"{b.latency_missing}; throughput: {a.seconds:g} s, window {a.window}/writer, acked in all "
        f"(CPU divisor) MangaHub {m.tp_acks_total} / bare {b.tp_acks_total}, sent MangaHub "
        f"{m.tp_sent} / bare {b.tp_sent}, errors MangaHub {m.tp_errors} / bare {b.tp_errors}, "
        f"pushes received MangaHub {m.tp_pushes} / bare {b.tp_pushes}; "
        f"error codes MangaHub {m.codes or 'none'} / bare {b.codes or 'none'}"
    )
    return "\n".join(lines) + "\n\n" + notes


def drive(a: argparse.Namespace) -> None:
    limit = raise_fd_limit()
    need = max(a.users * a.devices, a.writer_users * a.writer_devices) * 2 + 256
    if limit < need:
        sys.exit(f"open-files limit {limit} too low (need {need})")
    started = time.monotonic()
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="tcp-bench-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        data_dir.mkdir()
        print(f"[{time.monotonic() - started:5.1f}s] registering {a.users} users", flush=True)
        import uvloop

        accounts, ids = uvloop.run(prepare_mangahub(data_dir, a.users + a.writer_users))
        plain = [f"user{i}" for i in range(a.users + a.writer_users)]
        for name, toks in (("baseline", plain), ("mangahub", accounts)):
            print(f"[{time.monotonic() - started:5.1f}s] {name}: starting", flush=True)
            with start_server(name, work, data_dir) as server:
                held, writers = toks[: a.users], toks[a.users :]
                r = results[name] = measure(server, held, writers, ids, a)
            print(
                f"[{time.monotonic() - started:5.1f}s] {name}: held {r.held}, "
                f"{r.rss_per_conn:.1f} KiB/conn, p50 {r.p(0.5):.2f} ms, "
                f"{r.acks_per_s:,.0f} acks/s",
                flush=True,
            )
    header = (
        f"TCP bench, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, MangaHub on SQLite, "
        f"{time.monotonic() - started:.0f} s"
    )
    print(f"\n{header}\n\n{table(results['baseline'], results['mangahub'], a)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--devices", type=int, default=10, help="held connections per user")
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--updates", type=int, default=400, help="latency samples")
    parser.add_argument("--latency-rate", type=float, default=40.0, help="updates/s, total")
    parser.add_argument(
        "--writer-users", type=int, default=1500, help="users of the capacity phase"
    )
    parser.add_argument("--writer-devices", type=int, default=2, help="writers per user")
    parser.add_argument("--rate", type=float, default=45.0, help="updates/s per writer")
    parser.add_argument("--window", type=int, default=16, help="updates in flight/writer")
    parser.add_argument("--seconds", type=float, default=10.0, help="throughput window")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.serve_baseline:
        import uvloop

        raise_fd_limit()
        uvloop.run(serve_baseline(a.serve_baseline))
        return
    if a.quick:
        a.users, a.writer_users, a.updates, a.seconds = 20, 500, 80, 3.0
    drive(a)


if __name__ == "__main__":
    main()
