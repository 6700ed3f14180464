"""WebSocket chat benchmark: MangaHub's ``/ws`` beside a bare ``websockets`` broadcast
server, measured in the same run and printed as ratios.

Measured for each server:

* **held connections** - N authenticated, idle connections (default 2,000), opened by
  separate client processes; the server's RSS (``/proc/<pid>/status`` VmRSS) before
  and while they are held gives the memory per connection;
* **fan-out latency** - a room of 100 members and one sender posting at a steady
  rate: per message, the time from the send to its *last* member receiving it
  (p50/p99);
* **fan-out throughput** - the same room, the sender keeping a window of messages in
  flight: messages delivered per second, and the server's CPU time per delivered
  message (``/proc/<pid>/stat``), which on a shared machine is the steadier number.

Every process is separate: the MangaHub server (the real runtime and app over SQLite
in a temp dir, served by ``mangahub.servers.HttpServer`` as in production), the
baseline server, and the client worker processes (``multiprocessing``), so load
generation never shares an interpreter with a server. Clients use the ``websockets``
library; all processes read one clock (CLOCK_MONOTONIC is system-wide).

The MangaHub server raises the per-user chat rate limit (5 msg/s by default) for the
run: a single sender is the point of the fan-out test. Every chat message is still
validated, stored (a commit per message, or per batch of messages that arrive while
one is being committed) and fanned out through the event bus.

    .venv/bin/python bench/ws_bench.py                 # default run, about a minute
    .venv/bin/python bench/ws_bench.py --quick         # smoke run
    .venv/bin/python bench/ws_bench.py --connections 5000 --workers 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from common import (
    ClientProcess,
    cpu_seconds,
    free_port,
    raise_fd_limit,
    ratio,
    rss_kib,
    server_process,
)

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "data"


# --- servers (run as subprocesses of the driver: ``--serve mangahub|baseline``) ----------


async def serve_mangahub(port: int, data_dir: Path, ready: Path, tokens: int) -> None:
    from pydantic import SecretStr

    from mangahub.app import build_runtime
    from mangahub.chat.config import ChatConfig
    from mangahub.config import Settings
    from mangahub.domain.enums import Role
    from mangahub.domain.schemas import RegisterIn
    from mangahub.http.app import create_app
    from mangahub.security.tokens import Principal
    from mangahub.servers import HttpServer
    from mangahub.storage.models import Manga

    settings = Settings(
        host="127.0.0.1",
        data_dir=data_dir,
        database_url=None,
        redis_url=None,
        admin_password=SecretStr("bench-admin-password"),
        bcrypt_rounds=10,
        seed_catalog=False,
        log_level="WARNING",
    )
    async with build_runtime(settings) as runtime:
        async with runtime.db.session() as session:
            room = Manga(slug="ws-bench-room", title="WS bench room", status="ongoing")
            session.add(room)
            await session.flush()
            room_id = int(room.id)
        sender = await runtime.auth.register(
            RegisterIn(username="bench_sender", email="sender@example.com", password="x" * 12)
        )
        principals = [Principal(sender.id, sender.username, sender.email, Role.USER)]
        # Members and idle connections need no stored account: joining reads history
        # only. Each is a distinct user (its own progress subscription, as in real use).
        for i in range(tokens):
            principals.append(
                Principal(uuid.uuid4(), f"bench_{i:05d}", f"b{i}@bench.test", Role.USER)
            )
        issued = [runtime.tokens.issue(p) for p in principals]
        app = create_app(runtime)
        app.state.chat_config = ChatConfig(
            chat_rate=1e9, chat_burst=10**9, message_rate=1e9, message_burst=10**9
        )
        # The product's own HTTP door, so the run carries its uvicorn configuration
        # (websockets-sansio, no permessage-deflate, the frame size limit).
        server = HttpServer(runtime, "127.0.0.1", port, app=app)
        await server.start()
        stop = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
        _write_ready(
            ready,
            {"pid": os.getpid(), "room_id": room_id, "sender": issued[0], "tokens": issued[1:]},
        )
        await stop
        await server.stop(timeout=4)


async def serve_baseline(port: int, ready: Path, tokens: int) -> None:
    """Bare ``websockets`` server: the same JSON messages, a dict of rooms, one
    ``broadcast`` per chat message. No auth check, no storage, no bus. Like MangaHub's
    server it does not negotiate permessage-deflate, so both send the same frames."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    rooms: dict[int, set[ServerConnection]] = {}
    ids = iter(range(1, 1 << 62))
    user_id = str(uuid.uuid4())

    async def handler(ws: ServerConnection) -> None:
        joined: set[int] = set()
        try:
            async for raw in ws:
                message = orjson.loads(raw)
                kind = message.get("type")
                if kind == "ping":
                    await ws.send(orjson.dumps({"type": "pong"}).decode())
                elif kind == "join":
                    room_id = message["room_id"]
                    rooms.setdefault(room_id, set()).add(ws)
                    joined.add(room_id)
                    history = {"type": "history", "room_id": room_id, "messages": []}
                    await ws.send(orjson.dumps(history).decode())
                elif kind == "chat":
                    room_id = message["room_id"]
                    event = {
                        "type": "chat",
                        "id": next(ids),
                        "room_id": room_id,
                        "user_id": user_id,
                        "username": "bench_sender",
                        "content": message["content"],
                        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    }
                    broadcast(rooms.get(room_id, ()), orjson.dumps(event).decode())
        finally:
            for room_id in joined:
                rooms[room_id].discard(ws)

    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(handler, "127.0.0.1", port, ping_interval=20, max_queue=32, compression=None):
        _write_ready(
            ready, {"pid": os.getpid(), "room_id": 1, "sender": "x", "tokens": ["x"] * tokens}
        )
        await stop


def _write_ready(path: Path, info: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(path)


# --- client workers (multiprocessing) ----------------------------------------------------


async def _command(pipe: Connection) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, pipe.recv)


async def _open(url: str, token: str) -> Any:
    from websockets.asyncio.client import connect

    return await connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        ping_interval=None,  # the servers' keepalive is not what is measured
        open_timeout=60,
        max_queue=None,  # never stall the socket because this process is busy
    )


async def _open_all(url: str, tokens: list[str], setup: Any) -> list[Any]:
    gate = asyncio.Semaphore(50)

    async def one(token: str) -> Any:
        async with gate:
            ws = await _open(url, token)
            await setup(ws)
            return ws

    return list(await asyncio.gather(*(one(t) for t in tokens)))


async def _until(ws: Any, kind: str) -> None:
    while True:
        if orjson.loads(await ws.recv())["type"] == kind:
            return


async def _hold(pipe: Connection, url: str, tokens: list[str]) -> None:
    async def registered(ws: Any) -> None:
        # The pong proves the connection is authenticated and in the hub.
        await ws.send('{"type":"ping"}')
        await _until(ws, "pong")

    conns = await _open_all(url, tokens, registered)
    pipe.send(("ready", len(conns)))
    await _command(pipe)  # release
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    pipe.send(("done", None))


async def _members(pipe: Connection, url: str, tokens: list[str], room_id: int) -> None:
    async def join(ws: Any) -> None:
        await ws.send(orjson.dumps({"type": "join", "room_id": room_id}).decode())
        await _until(ws, "history")

    conns = await _open_all(url, tokens, join)
    last: dict[int, float] = {}
    counts: dict[int, int] = {}
    delivered = [0]

    async def read(ws: Any) -> None:
        clock = time.monotonic
        async for raw in ws:
            now = clock()
            message = orjson.loads(raw)
            if message["type"] != "chat":
                continue
            seq = int(message["content"].partition(" ")[0])
            delivered[0] += 1
            counts[seq] = counts.get(seq, 0) + 1
            if now > last.get(seq, 0.0):
                last[seq] = now

    readers = [asyncio.create_task(read(ws)) for ws in conns]
    pipe.send(("ready", len(conns)))
    while (await _command(pipe)) == "report":
        pipe.send(("report", {"last": dict(last), "counts": dict(counts), "n": delivered[0]}))
        last.clear()
        counts.clear()
        delivered[0] = 0
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    pipe.send(("done", None))


async def _sender(pipe: Connection, url: str, token: str, room_id: int) -> None:
    ws = await _open(url, token)
    await ws.send(orjson.dumps({"type": "join", "room_id": room_id}).decode())
    await _until(ws, "history")
    echoes: asyncio.Queue[int] = asyncio.Queue()

    async def read() -> None:
        async for raw in ws:
            message = orjson.loads(raw)
            if message["type"] == "chat":
                echoes.put_nowait(int(message["content"].partition(" ")[0]))
            elif message["type"] == "error":
                print("sender got", message, file=sys.stderr)

    reader = asyncio.create_task(read())
    pipe.send(("ready", 1))
    padding = "x" * 80  # a chat line of ~100 characters
    while (phase := await _command(pipe)) != "stop":
        first_seq, count, rate, window, seconds = phase
        sent: dict[int, float] = {}
        loop = asyncio.get_running_loop()
        start = loop.time()
        if rate:  # open loop at a steady rate: latency without queueing
            for i in range(count):
                await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
                seq = first_seq + i
                sent[seq] = time.monotonic()
                await ws.send(_chat(room_id, seq, padding))
        else:  # closed loop, `window` messages in flight: throughput
            slots = asyncio.Semaphore(window)

            async def release(slots: asyncio.Semaphore = slots) -> None:
                while True:
                    await echoes.get()
                    slots.release()

            releaser = asyncio.create_task(release())
            seq = first_seq
            while loop.time() - start < seconds:
                await slots.acquire()
                sent[seq] = time.monotonic()
                await ws.send(_chat(room_id, seq, padding))
                seq += 1
            releaser.cancel()
        pipe.send(("sent", sent))
        while not echoes.empty():
            echoes.get_nowait()
    reader.cancel()
    await ws.close()
    pipe.send(("done", None))


def _chat(room_id: int, seq: int, padding: str) -> str:
    return orjson.dumps(
        {"type": "chat", "room_id": room_id, "content": f"{seq} {padding}"}
    ).decode()


def worker_main(pipe: Connection, role: str, *args: Any) -> None:
    raise_fd_limit()
    import uvloop

    roles: dict[str, Callable[..., Coroutine[Any, Any, None]]] = {
        "hold": _hold,
        "members": _members,
        "sender": _sender,
    }
    uvloop.run(roles[role](pipe, *args))


# --- the driver ------------------------------------------------------------------------


@dataclass
class ServerProc:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    pid: int
    room_id: int
    sender: str
    tokens: list[str]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)


@contextlib.contextmanager
def start_server(name: str, tokens: int, workdir: Path) -> Iterator[ServerProc]:
    port = free_port()
    ready = workdir / f"{name}.ready.json"
    cmd = [sys.executable, __file__, "--serve", name, "--port", str(port)]
    cmd += ["--ready-file", str(ready), "--tokens", str(tokens), "--data-dir", str(workdir / name)]
    with server_process(name, cmd, workdir / f"{name}.log", ready.exists) as process:
        info = json.loads(ready.read_text())
        yield ServerProc(
            name, process, port, info["pid"], info["room_id"], info["sender"], info["tokens"]
        )


def split(items: list[str], parts: int) -> list[list[str]]:
    return [items[i::parts] for i in range(parts)]


@dataclass
class Result:
    server: str
    connections: int = 0
    rss_before_kib: int = 0
    rss_held_kib: int = 0
    connect_seconds: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    latency_incomplete: int = 0
    throughput_messages: int = 0
    throughput_deliveries: int = 0
    throughput_seconds: float = 0.0
    throughput_cpu_seconds: float = 0.0

    @property
    def rss_per_connection_kib(self) -> float:
        return (self.rss_held_kib - self.rss_before_kib) / max(1, self.connections)

    def p(self, q: float) -> float:
        data = sorted(self.latency_ms)
        return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")

    @property
    def deliveries_per_second(self) -> float:
        return (
            self.throughput_deliveries / self.throughput_seconds if self.throughput_seconds else 0
        )

    @property
    def cpu_us_per_delivery(self) -> float:
        return 1e6 * self.throughput_cpu_seconds / max(1, self.throughput_deliveries)


def measure_held(server: ServerProc, count: int, workers: int, result: Result) -> None:
    tokens = server.tokens[:count]
    # Warm-up: the first connections create the hub and import lazily loaded code.
    warm = ClientProcess(worker_main, "hold", server.url, tokens[:20])
    warm.expect("ready")
    warm.finish("release")
    time.sleep(0.5)
    result.rss_before_kib = server.rss_kib()
    start = time.monotonic()
    group = [
        ClientProcess(worker_main, "hold", server.url, part) for part in split(tokens, workers)
    ]
    result.connections = sum(w.expect("ready", 180) for w in group)
    result.connect_seconds = time.monotonic() - start
    time.sleep(1.0)  # let the server settle (freed handshake buffers, tasks at rest)
    result.rss_held_kib = server.rss_kib()
    for w in group:
        w.finish("release")


def measure_fanout(server: ServerProc, args: argparse.Namespace, result: Result) -> None:
    tokens = server.tokens[: args.members]
    members = [
        ClientProcess(worker_main, "members", server.url, part, server.room_id)
        for part in split(tokens, 2)
    ]
    for w in members:
        w.expect("ready")
    sender = ClientProcess(worker_main, "sender", server.url, server.sender, server.room_id)
    sender.expect("ready")
    time.sleep(0.5)
    for w in members:  # drop join notices and presence
        w.pipe.send("report")
        w.expect("report")

    def run_phase(phase: tuple[int, int, float, int, float]) -> tuple[dict[int, float], list[Any]]:
        sender.pipe.send(phase)
        sent: dict[int, float] = sender.expect("sent", 120)
        time.sleep(args.grace)
        reports = []
        for w in members:
            w.pipe.send("report")
            reports.append(w.expect("report"))
        return sent, reports

    # Latency: a steady rate far below capacity, so a message never waits for another.
    count = int(args.latency_rate * args.latency_seconds)
    sent, reports = run_phase((0, count, args.latency_rate, 0, 0.0))
    for seq, t_sent in sent.items():
        got = sum(r["counts"].get(seq, 0) for r in reports)
        if got < args.members:
            result.latency_incomplete += 1
            continue
        last = max(r["last"].get(seq, 0.0) for r in reports)
        result.latency_ms.append(1000 * (last - t_sent))

    # Throughput: a window of messages in flight for a fixed time.
    cpu_before = server.cpu_seconds()
    sent, reports = run_phase((1_000_000, 0, 0.0, args.window, args.throughput_seconds))
    cpu_after = server.cpu_seconds()
    lasts = [t for r in reports for t in r["last"].values()]
    result.throughput_messages = len(sent)
    result.throughput_deliveries = sum(r["n"] for r in reports)
    result.throughput_seconds = (max(lasts) - min(sent.values())) if lasts and sent else 0.0
    result.throughput_cpu_seconds = cpu_after - cpu_before
    sender.finish("stop")
    for w in members:
        w.finish("stop")


def report(results: dict[str, Result], args: argparse.Namespace) -> str:
    base, app = results["baseline"], results["mangahub"]
    rows = [
        ("held connections", f"{base.connections}", f"{app.connections}", ""),
        (
            "connect time (s)",
            f"{base.connect_seconds:.1f}",
            f"{app.connect_seconds:.1f}",
            ratio(app.connect_seconds, base.connect_seconds),
        ),
        (
            "server RSS per connection (KiB)",
            f"{base.rss_per_connection_kib:.1f}",
            f"{app.rss_per_connection_kib:.1f}",
            ratio(app.rss_per_connection_kib, base.rss_per_connection_kib),
        ),
        (
            f"fan-out to {args.members}: p50 send→last receive (ms)",
            f"{base.p(0.5):.2f}",
            f"{app.p(0.5):.2f}",
            ratio(app.p(0.5), base.p(0.5)),
        ),
        (
            f"fan-out to {args.members}: p99 send→last receive (ms)",
            f"{base.p(0.99):.2f}",
            f"{app.p(0.99):.2f}",
            ratio(app.p(0.99), base.p(0.99)),
        ),
        (
            f"messages delivered/s (window of {args.window})",
            f"{base.deliveries_per_second:,.0f}",
            f"{app.deliveries_per_second:,.0f}",
            ratio(app.deliveries_per_second, base.deliveries_per_second),
        ),
        (
            "server CPU per delivered message (µs)",
            f"{base.cpu_us_per_delivery:.1f}",
            f"{app.cpu_us_per_delivery:.1f}",
            ratio(app.cpu_us_per_delivery, base.cpu_us_per_delivery),
        ),
    ]
    lines = [
        "| measure | bare websockets | MangaHub /ws | MangaHub ÷ bare |",
        "|---|---:|---:|---:|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
    ]
    notes = (
        f"latency: {len(app.latency_ms)} messages at {args.latency_rate:g}/s "
        f"(incomplete: bare {base.latency_incomplete}, MangaHub {app.latency_incomplete}); "
        f"throughput: {args.throughput_seconds:g} s, sender sent bare "
        f"{base.throughput_messages}, MangaHub {app.throughput_messages} messages"
    )
    return "\n".join(lines) + "\n\n" + notes


def drive(args: argparse.Namespace) -> None:
    limit = raise_fd_limit()
    if limit < args.connections + 256:
        sys.exit(f"open-files limit {limit} is too low for {args.connections} connections")
    run_dir = DATA_DIR / f"ws-run-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    run_dir.mkdir(parents=True, exist_ok=True)
    tokens = max(args.connections, args.members)
    results: dict[str, Result] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ws-bench-") as tmp:
        for name in ("baseline", "mangahub"):
            print(f"[{time.monotonic() - started:5.1f}s] {name}: starting", flush=True)
            with start_server(name, tokens, Path(tmp)) as server:
                result = results[name] = Result(name)
                measure_held(server, args.connections, args.workers, result)
                print(
                    f"[{time.monotonic() - started:5.1f}s] {name}: held {result.connections} "
                    f"connections, {result.rss_per_connection_kib:.1f} KiB each",
                    flush=True,
                )
                measure_fanout(server, args, result)
                print(
                    f"[{time.monotonic() - started:5.1f}s] {name}: fan-out p50 "
                    f"{result.p(0.5):.2f} ms, {result.deliveries_per_second:,.0f} msg/s",
                    flush=True,
                )
    table = report(results, args)
    header = (
        f"WebSocket bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, MangaHub on SQLite, "
        f"{time.monotonic() - started:.0f} s"
    )
    print(f"\n{header}\n\n{table}")
    (run_dir / "results.json").write_text(
        json.dumps(
            {"args": vars(args), "results": {k: asdict(v) for k, v in results.items()}}, indent=1
        )
    )
    print(f"\nraw numbers: {run_dir / 'results.json'}")
    bad = [r for r in results.values() if r.latency_incomplete or r.connections < args.connections]
    if bad:
        sys.exit(f"incomplete run: {[r.server for r in bad]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="client processes holding")
    parser.add_argument("--latency-rate", type=float, default=50.0, help="messages/s")
    parser.add_argument("--latency-seconds", type=float, default=6.0)
    parser.add_argument("--throughput-seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=16, help="messages in flight")
    parser.add_argument("--grace", type=float, default=1.0, help="s to wait for stragglers")
    parser.add_argument("--quick", action="store_true", help="smoke run: small numbers")
    # Internal: the driver starts the servers through these.
    parser.add_argument("--serve", choices=["mangahub", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        import uvloop

        raise_fd_limit()
        if args.serve == "mangahub":
            uvloop.run(serve_mangahub(args.port, args.data_dir, args.ready_file, args.tokens))
        else:
            uvloop.run(serve_baseline(args.port, args.ready_file, args.tokens))
        return
    if args.quick:
        args.connections, args.latency_seconds, args.throughput_seconds = 200, 1.0, 1.5
    drive(args)


if __name__ == "__main__":
    main()
