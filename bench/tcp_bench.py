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
  pushed to the user's other device. Server CPU per acked update over the same window
  (until every update sent in it is answered).

Both servers run for the whole run. The held-connection and latency phases run on one
server, then on the other. The capacity phase runs in paired rounds (``--rounds``,
default 3): each server keeps its own writers connected, and a round is one window on
each server, one after the other, never both at once, the first alternating (bare
first in round 1, MangaHub first in round 2, ...). Why: on a shared machine one 10 s
window swings by +-15 % and the machine drifts more over minutes, so one window per
server, minutes apart, gives mostly noise as a ratio. A round pairs the two servers
within ~25 s of each other; the table's ratio is the median of the rounds' ratios
(MangaHub / bare in each round), its absolute numbers each server's median over the
rounds, and the line under it lists every round.

The MangaHub server is the real CLI (``python -m mangahub serve tcp``) over SQLite in a
temp dir; users are registered and tokens signed with the server's own secret before
it starts. The baseline (``--serve-baseline``) has no auth check, no storage, no bus:
``auth`` -> ``auth_ok``, ``progress_update`` -> ``ack`` plus one ``progress`` line to
every other connection of the same "user" (the token). Clients run in separate
processes (``multiprocessing``, uvloop); one system-wide monotonic clock.

    .venv/bin/python bench/tcp_bench.py            # default run, about 2 minutes
    .venv/bin/python bench/tcp_bench.py --quick    # smoke run, one round
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
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
SERVERS = ("baseline", "mangahub")
LABELS = {"baseline": "bare", "mangahub": "MangaHub"}


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
        self.sent = 0  # progress updates sent by the capacity phase, over all its windows


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


async def _keepalive(conns: list[Conn], every: float = 60.0) -> None:
    while True:
        await asyncio.sleep(every)
        for c in conns:
            c.writer.write(b'{"type":"ping"}\n')


async def _next_command(pipe: Connection, conns: list[Conn]) -> Any:
    """The driver's next command. A writer group waits through the other server's
    capacity windows, and MangaHub closes a connection silent for 90 s: a ping a minute
    while waiting (never within the default run's gaps of ~30 s)."""
    keepalive = asyncio.create_task(_keepalive(conns))
    try:
        return await _recv(pipe)
    finally:
        keepalive.cancel()


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
    while (cmd := await _next_command(pipe, conns)) != "stop":
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
    """Every connection writes at ``rate``/s with at most ``window`` unanswered updates,
    for ``seconds`` from ``go_at``; then waits until every update sent is answered, so
    that a next call (the next window) starts with nothing in flight. Counts restart
    with each call; the updates' ids and chapters go on from the previous calls."""
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
            seq = c.sent
            update = {
                "type": "progress_update",
                "id": seq,
                "data": {
                    "manga_id": manga_ids[(k + seq) % len(manga_ids)],
                    "chapter": float(seq % 100_000),
                    "status": "reading",
                },
            }
            c.writer.write(orjson.dumps(update) + b"\n")
            n += 1
            c.sent += 1
            counters["sent"] += 1

    for c in conns:
        c.task = asyncio.create_task(read(c))
    await asyncio.sleep(max(0.0, go_at - time.monotonic()))
    writers = [asyncio.create_task(write(c, k)) for k, c in enumerate(conns)]
    await asyncio.sleep(seconds)
    counters["counting"] = 0
    acks_in_window = counters["acks"]
    _, stuck = await asyncio.wait(writers, timeout=5)
    for task in stuck:  # waiting on a full window that is not answered
        task.cancel()
    deadline = loop.time() + 15
    while sum(answered.values()) < counters["sent"] and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # the last pushes land, the server settles
    answered_total = sum(answered.values())
    return {
        **counters,
        "acks": acks_in_window,
        "acks_total": answered_total - counters["errors"],
        "unanswered": counters["sent"] - answered_total,
        "codes": codes,
    }


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
class Window:
    """One capacity window on one server."""

    seconds: float
    acks: int = 0  # received inside the window: the capacity
    acks_total: int = 0  # every update of the window acked: the CPU divisor
    sent: int = 0
    errors: int = 0
    unanswered: int = 0
    pushes: int = 0
    cpu: float = 0.0

    @property
    def acks_per_s(self) -> float:
        return self.acks / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_ack(self) -> float:
        return 1e6 * self.cpu / max(1, self.acks_total)


@dataclass
class Result:
    name: str
    held: int = 0
    rss_before_kib: int = 0
    rss_held_kib: int = 0
    latency_ms: list[float] = field(default_factory=list)
    latency_missing: int = 0
    tp_writers: int = 0
    windows: list[Window] = field(default_factory=list)  # one a round
    codes: dict[str, int] = field(default_factory=dict)

    @property
    def rss_per_conn(self) -> float:
        return (self.rss_held_kib - self.rss_before_kib) / max(1, self.held)

    def p(self, q: float) -> float:
        d = sorted(self.latency_ms)
        return d[min(len(d) - 1, int(q * len(d)))] if d else float("nan")

    @property
    def acks_per_s(self) -> float:
        """Median over the rounds."""
        return statistics.median(w.acks_per_s for w in self.windows)

    @property
    def cpu_us_per_ack(self) -> float:
        """Median over the rounds."""
        return statistics.median(w.cpu_us_per_ack for w in self.windows)

    def total(self, count: Callable[[Window], int]) -> int:
        return sum(count(w) for w in self.windows)

    def add_codes(self, phase: str, codes: dict[str, int]) -> None:
        for k, v in codes.items():
            self.codes[f"{phase}:{k}"] = self.codes.get(f"{phase}:{k}", 0) + v


def plan_for(tokens: list[str], devices: int, workers: int) -> list[list[tuple[int, str, int]]]:
    """All devices of a user in the same worker (so its latency is timed in-process)."""
    plans: list[list[tuple[int, str, int]]] = [[] for _ in range(workers)]
    for u, tok in enumerate(tokens):
        plans[u % workers].extend((u, tok, d) for d in range(devices))
    return plans


@contextlib.contextmanager
def client_group(
    server: ServerProc, plans: list[list[tuple[int, str, int]]]
) -> Iterator[list[ClientProcess]]:
    """One client process a plan, each holding its plan's connections to ``server``."""
    group = [ClientProcess(worker_main, server.port, p) for p in plans]
    try:
        yield group
    finally:
        for w in group:
            w.finish()


def connected(group: list[ClientProcess]) -> int:
    """Wait until every process of ``group`` holds its connections; how many in all."""
    return sum(w.expect("ready", 120) for w in group)


def measure_held(
    server: ServerProc, tokens: list[str], ids: list[int], a: argparse.Namespace
) -> Result:
    """Held connections (RSS) and update -> push latency on them."""
    r = Result(server.name)
    with client_group(server, plan_for(tokens[:2], 2, 1)) as warm:  # warm up lazy imports
        connected(warm)
    time.sleep(0.5)
    r.rss_before_kib = server.rss_kib()
    with client_group(server, plan_for(tokens, a.devices, a.workers)) as group:
        r.held = connected(group)
        time.sleep(1.0)
        r.rss_held_kib = server.rss_kib()
        per = a.updates // a.workers
        for k, w in enumerate(group):
            w.pipe.send(("latency", per, a.latency_rate / a.workers, ids, 10_000 + k * per))
        for w in group:
            got = w.expect("latency", 120)
            r.latency_ms += got["ms"]
            r.latency_missing += got["missing"]
            r.add_codes("latency", got["codes"])
    time.sleep(0.5)
    return r


def capacity_window(
    r: Result,
    server: ServerProc,
    writers: list[ClientProcess],
    ids: list[int],
    a: argparse.Namespace,
) -> Window:
    """One window of the capacity phase on ``server`` (its writer group ``writers``),
    appended to ``r``. It ends once every update sent in it is answered."""
    win = Window(a.seconds)
    go = time.monotonic() + 0.5
    cpu0 = server.cpu_seconds()
    for w in writers:
        w.pipe.send(("throughput", a.seconds, a.rate, a.window, ids, go))
    for w in writers:
        got = w.expect("throughput", a.seconds + 60)
        win.acks += got["acks"]
        win.acks_total += got["acks_total"]
        win.sent += got["sent"]
        win.errors += got["errors"]
        win.unanswered += got["unanswered"]
        win.pushes += got["pushes"]
        r.add_codes("throughput", got["codes"])
    win.cpu = server.cpu_seconds() - cpu0
    r.windows.append(win)
    return win


def round_order(i: int) -> tuple[str, ...]:
    """Which server goes first alternates: baseline in round 0, MangaHub in round 1, ..."""
    return SERVERS if i % 2 == 0 else SERVERS[::-1]


def paired_ratios(b: Result, m: Result, metric: Callable[[Window], float]) -> list[float]:
    """MangaHub ÷ bare of ``metric``, one a round."""
    return [
        metric(y) / metric(x) if metric(x) else float("nan")
        for x, y in zip(b.windows, m.windows, strict=True)
    ]


def times(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}x"


def median_ratio(ratios: list[float]) -> str:
    known = [x for x in ratios if not math.isnan(x)]
    return times(statistics.median(known)) if known else "n/a"


def rounds_line(b: Result, m: Result) -> str:
    speed = paired_ratios(b, m, lambda w: w.acks_per_s)
    cost = paired_ratios(b, m, lambda w: w.cpu_us_per_ack)
    rounds = []
    for i, (x, y) in enumerate(zip(b.windows, m.windows, strict=True)):
        first = LABELS[round_order(i)[0]]
        rounds.append(
            f"{i + 1} ({first} first) {x.acks_per_s:,.0f} / {y.acks_per_s:,.0f} = "
            f"{times(speed[i])}, {x.cpu_us_per_ack:.1f} / {y.cpu_us_per_ack:.1f} µs = "
            f"{times(cost[i])}"
        )
    return (
        "capacity rounds (bare / MangaHub acked updates/s = ratio, bare / MangaHub CPU per "
        f"acked update = ratio): {'; '.join(rounds)}"
    )


def table(b: Result, m: Result, a: argparse.Namespace) -> str:
    offered = m.tp_writers * a.rate
    rounds = f"{len(m.windows)} round{'s' if len(m.windows) > 1 else ''}"
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
            f"{offered:,.0f}/s offered), median of {rounds}",
            f"{b.acks_per_s:,.0f}",
            f"{m.acks_per_s:,.0f}",
            median_ratio(paired_ratios(b, m, lambda w: w.acks_per_s)),
        ),
        (
            f"server CPU per acked update (µs), median of {rounds}",
            f"{b.cpu_us_per_ack:.1f}",
            f"{m.cpu_us_per_ack:.1f}",
            median_ratio(paired_ratios(b, m, lambda w: w.cpu_us_per_ack)),
        ),
    ]
    lines = [
        "| measure | bare asyncio JSON-lines | MangaHub TCP | MangaHub ÷ bare |",
        "|---|---:|---:|---:|",
        *(f"| {x} | {y} | {z} | {w} |" for x, y, z, w in rows),
    ]
    kept_up = [LABELS[r.name] for r in (b, m) if r.acks_per_s >= 0.95 * r.tp_writers * a.rate]
    saturation = (
        f"NOT SATURATED ({', '.join(kept_up)} kept up with the offer: that number is only "
        "the offer, not a capacity; raise --writer-users)"
        if kept_up
        else "both saturated (each acked less than the offer: the numbers are capacities)"
    )

    def both(count: Callable[[Window], int]) -> str:
        return f"MangaHub {m.total(count)} / bare {b.total(count)}"

    notes = (
        f"capacity phase: {saturation}; latency: {len(m.latency_ms)}/{len(b.latency_ms)} "
        f"updates (MangaHub/bare) at "
        f"{a.latency_rate:g}/s total, missing MangaHub {m.latency_missing}, bare "
        f"{b.latency_missing}; throughput: {rounds} of {a.seconds:g} s a "
        f"server, window {a.window}/writer, over all rounds: acked in all (CPU divisor) "
        f"{both(lambda w: w.acks_total)}, sent {both(lambda w: w.sent)}, errors "
        f"{both(lambda w: w.errors)}, unanswered {both(lambda w: w.unanswered)}, pushes "
        f"received {both(lambda w: w.pushes)}; "
        f"error codes MangaHub {m.codes or 'none'} / bare {b.codes or 'none'}"
    )
    return "\n".join(lines) + "\n\n" + rounds_line(b, m) + "\n\n" + notes


def measure_all(
    work: Path,
    data_dir: Path,
    tokens: dict[str, list[str]],
    ids: list[int],
    a: argparse.Namespace,
    log: Callable[[str], None],
) -> dict[str, Result]:
    """Both servers up for the whole run: the held-connection and latency phases on one,
    then the other; then ``a.rounds`` paired capacity rounds."""
    results: dict[str, Result] = {}
    with contextlib.ExitStack() as stack:
        servers: dict[str, ServerProc] = {}
        for name in SERVERS:
            log(f"{name}: starting")
            servers[name] = stack.enter_context(start_server(name, work, data_dir))
        for name in SERVERS:
            r = results[name] = measure_held(servers[name], tokens[name][: a.users], ids, a)
            log(f"{name}: held {r.held}, {r.rss_per_conn:.1f} KiB/conn, p50 {r.p(0.5):.2f} ms")
        writers: dict[str, list[ClientProcess]] = {}
        for name in SERVERS:
            plans = plan_for(tokens[name][a.users :], a.writer_devices, a.workers)
            writers[name] = stack.enter_context(client_group(servers[name], plans))
            results[name].tp_writers = connected(writers[name])
            log(f"{name}: {results[name].tp_writers} writers connected")
        for i in range(a.rounds):
            for name in round_order(i):
                w = capacity_window(results[name], servers[name], writers[name], ids, a)
                log(
                    f"round {i + 1}/{a.rounds} {name}: {w.acks_per_s:,.0f} acks/s, "
                    f"{w.cpu_us_per_ack:.1f} µs/update"
                )
    return results


def drive(a: argparse.Namespace) -> None:
    limit = raise_fd_limit()
    need = max(a.users * a.devices, a.writer_users * a.writer_devices) * 2 + 256
    if limit < need:
        sys.exit(f"open-files limit {limit} too low (need {need})")
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {message}", flush=True)

    with tempfile.TemporaryDirectory(prefix="tcp-bench-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        data_dir.mkdir()
        log(f"registering {a.users + a.writer_users} users")
        import uvloop

        accounts, ids = uvloop.run(prepare_mangahub(data_dir, a.users + a.writer_users))
        plain = [f"user{i}" for i in range(a.users + a.writer_users)]
        results = measure_all(
            work, data_dir, {"baseline": plain, "mangahub": accounts}, ids, a, log
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
    parser.add_argument("--rounds", type=int, help="paired capacity rounds (default 3, --quick 1)")
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
    if a.rounds is None:
        a.rounds = 1 if a.quick else 3
    if a.rounds < 1:
        parser.error("--rounds must be at least 1")
    drive(a)


if __name__ == "__main__":
    main()
