"""UDP notification fan-out benchmark: MangaHub's ``mangahub serve udp`` beside a bare
asyncio UDP fan-out server, measured in the same run and printed as ratios.

Setup: a fresh SQLite data dir holding one manga and N users (default 1,000, inserted
in bulk with one precomputed bcrypt hash) who all have it in their library; one
access token per user. The real server is then started as a subprocess
(``python -m mangahub serve udp``), and client worker processes (``multiprocessing``,
each with many UDP sockets, SO_RCVBUF raised) SUBSCRIBE one socket per user.

One round: the driver POSTs ``/notify/new-chapter`` to the trigger; the time from the
POST until the *last* client socket holds its NOTIFICATION is the fan-out time
(clients ACK every copy, as the protocol asks). notifications/s = recipients / that
time. The baseline is a bare asyncio server: a minimal HTTP handler for the same
POST that sends a datagram of the same size to the same number of registered
sockets (clients ACK it too; the baseline parses and drops the ACK). All processes
read one clock (CLOCK_MONOTONIC is system-wide).

    .venv/bin/python bench/udp_bench.py            # default run, ~1-2 minutes
    .venv/bin/python bench/udp_bench.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from common import ClientProcess, free_port, raise_fd_limit, ratio

RCVBUF = 1024 * 1024


# --- setup: users, library entries, tokens ------------------------------------------


async def prepare_data(data_dir: Path, users: int) -> tuple[int, list[str]]:
    """One manga followed by ``users`` users; returns its id and their access tokens."""
    import bcrypt

    from mangahub.app import build_runtime
    from mangahub.config import Settings
    from mangahub.domain.enums import ReadingStatus, Role
    from mangahub.security.tokens import Principal
    from mangahub.storage.models import Manga, ReadingEntry, User

    settings = Settings(
        host="127.0.0.1",
        data_dir=data_dir,
        database_url=None,
        redis_url=None,
        bcrypt_rounds=10,
        seed_catalog=False,
        log_level="WARNING",
    )
    password_hash = bcrypt.hashpw(b"bench-password-123", bcrypt.gensalt(10)).decode()
    async with build_runtime(settings) as runtime:
        principals = [
            Principal(uuid.uuid4(), f"udpb_{i:05d}", f"u{i}@udpbench.test", Role.USER)
            for i in range(users)
        ]
        async with runtime.db.session() as session:
            manga = Manga(slug="udp-bench-series", title="UDP bench series", status="ongoing")
            session.add(manga)
            await session.flush()
            manga_id = int(manga.id)
            session.add_all(
                User(
                    id=p.user_id,
                    username=p.username,
                    email=p.email,
                    password_hash=password_hash,
                    progress_seq=1,
                )
                for p in principals
            )
            await session.flush()
            session.add_all(
                ReadingEntry(
                    user_id=p.user_id, manga_id=manga_id, status=ReadingStatus.READING, version=1
                )
                for p in principals
            )
            await session.commit()
        tokens = [runtime.tokens.issue(p) for p in principals]
    return manga_id, tokens


# --- the baseline server (subprocess: ``--serve-baseline``) ---------------------------


class _BaselineUdp(asyncio.DatagramProtocol):
    def __init__(self, subscribers: list[tuple[str, int]]) -> None:
        self.subscribers = subscribers
        self.known: set[tuple[str, int]] = set()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        message = json.loads(data)
        address = (str(addr[0]), int(addr[1]))
        if message.get("type") == "SUBSCRIBE" and self.transport is not None:
            if address not in self.known:
                self.known.add(address)
                self.subscribers.append(address)
            self.transport.sendto(b'{"type":"SUBSCRIBED"}', address)
        # ACK: parsed (above) and dropped.


async def serve_baseline(udp_port: int, http_port: int, payload_size: int) -> None:
    loop = asyncio.get_running_loop()
    subscribers: list[tuple[str, int]] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", udp_port))
    sock.setblocking(False)
    transport, proto = await loop.create_datagram_endpoint(
        lambda: _BaselineUdp(subscribers), sock=sock
    )
    next_id = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal next_id
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = json.loads(await reader.readexactly(length))
                next_id += 1
                fields = {
                    "type": "NOTIFICATION",
                    "id": next_id,
                    "kind": "new_chapter",
                    "manga_id": body["manga_id"],
                    "title": body["title"],
                    "chapter": body["chapter"],
                    "previous_chapter": body.get("old_chapter"),
                    "message": "",
                }
                size = len(json.dumps(fields, separators=(",", ":")).encode())
                fields["message"] = "x" * max(0, payload_size - size)
                payload = json.dumps(fields, separators=(",", ":")).encode()
                for address in subscribers:
                    transport.sendto(payload, address)
                reply = json.dumps({"accepted": True, "recipients": len(subscribers)}).encode()
                writer.write(
                    b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(reply), reply)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", http_port)
    print(f"baseline listening on udp {udp_port} http {http_port}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    transport.close()


# --- client workers -------------------------------------------------------------------


class _Client(asyncio.DatagramProtocol):
    def __init__(self, worker: _WorkerState) -> None:
        self.worker = worker
        self.transport: asyncio.DatagramTransport | None = None
        self.subscribed = asyncio.Event()
        self.seen: set[int] = set()
        self.got_at: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        now = time.monotonic()
        message = json.loads(data)
        kind = message.get("type")
        if kind == "SUBSCRIBED":
            self.subscribed.set()
        elif kind == "NOTIFICATION":
            nid = int(message["id"])
            assert self.transport is not None
            self.transport.sendto(b'{"type":"ACK","id":%d}' % nid)
            if nid in self.seen:
                self.worker.duplicates += 1
                return
            self.seen.add(nid)
            self.worker.sizes.add(len(data))
            if self.got_at is None:
                self.got_at = now
                self.worker.pending -= 1
                if self.worker.pending == 0:
                    self.worker.all_in.set()


@dataclass
class _WorkerState:
    pending: int = 0
    duplicates: int = 0
    sizes: set[int] = field(default_factory=set)
    all_in: asyncio.Event = field(default_factory=asyncio.Event)


async def _worker(pipe: Connection, server: tuple[str, int], tokens: list[str]) -> None:
    loop = asyncio.get_running_loop()
    state = _WorkerState()
    clients: list[_Client] = []
    for _ in tokens:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind(("127.0.0.1", 0))
        sock.connect(server)
        sock.setblocking(False)
        _, client = await loop.create_datagram_endpoint(lambda: _Client(state), sock=sock)
        clients.append(client)

    async def subscribe(client: _Client, token: str) -> None:
        assert client.transport is not None
        request = json.dumps({"type": "SUBSCRIBE", "token": token}).encode()
        for _ in range(10):
            client.transport.sendto(request)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await client.subscribed.wait()
                    return

    for start in range(0, len(clients), 50):
        await asyncio.gather(
            *(
                subscribe(c, t)
                for c, t in zip(clients[start : start + 50], tokens[start:], strict=False)
            )
        )
    pipe.send(("ready", sum(c.subscribed.is_set() for c in clients)))
    while True:
        command = await asyncio.to_thread(pipe.recv)
        if command[0] == "arm":
            for client in clients:
                client.got_at = None
            state.pending = len(clients)
            state.all_in = asyncio.Event()
            pipe.send(("armed", None))
        elif command[0] == "collect":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(command[1]):
                    await state.all_in.wait()
            times = [c.got_at for c in clients if c.got_at is not None]
            pipe.send(("collected", (times, len(clients) - len(times))))
        elif command[0] == "stats":
            pipe.send(("stats", (state.duplicates, sorted(state.sizes))))
        else:
            for client in clients:
                if client.transport is not None:
                    client.transport.close()
            pipe.send(("done", None))
            return


def worker_main(pipe: Connection, server: tuple[str, int], tokens: list[str]) -> None:
    raise_fd_limit()
    import uvloop

    uvloop.run(_worker(pipe, server, tokens))


# --- driver ---------------------------------------------------------------------------


@contextlib.contextmanager
def start_process(cmd: list[str], env: dict[str, str], log: Path, ready: str) -> Iterator[int]:
    out = log.open("wb")
    process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while ready not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {log}")
            time.sleep(0.05)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    name: str
    fanout_ms: list[float] = field(default_factory=list)
    accepted_ms: list[float] = field(default_factory=list)
    missing: int = 0
    duplicates: int = 0
    payload: list[int] = field(default_factory=list)
    cpu_ms_per_round: float = 0.0

    def p(self, q: float) -> float:
        data = sorted(self.fanout_ms)
        return data[min(len(data) - 1, round(q * (len(data) - 1)))]

    def rate(self, recipients: int) -> float:
        return recipients / (statistics.median(self.fanout_ms) / 1000)


def run_rounds(
    name: str,
    pid: int,
    udp: tuple[str, int],
    http_port: int,
    headers: dict[str, str],
    manga_id: int,
    tokens: list[str],
    args: argparse.Namespace,
) -> Result:
    chunks = [tokens[i :: args.workers] for i in range(args.workers)]
    workers = [ClientProcess(worker_main, udp, chunk) for chunk in chunks]
    result = Result(name)
    try:
        subscribed = sum(w.expect("ready") for w in workers)
        if subscribed != len(tokens):
            raise RuntimeError(f"{name}: only {subscribed}/{len(tokens)} subscribed")
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
        cpu_total = 0.0
        for r in range(args.warmup + args.rounds):
            for w in workers:
                w.pipe.send(("arm",))
            for w in workers:
                w.expect("armed")
            time.sleep(args.pause)
            body = json.dumps(
                {"manga_id": manga_id, "title": "UDP bench series", "chapter": 100 + r}
            )
            cpu0 = cpu_seconds(pid)
            t0 = time.monotonic()
            conn.request("POST", "/notify/new-chapter", body, headers)
            response = conn.getresponse()
            answer = response.read()
            t_accepted = time.monotonic()
            if response.status != 202:
                raise RuntimeError(f"{name}: trigger answered {response.status}: {answer!r}")
            times: list[float] = []
            missing = 0
            for w in workers:
                w.pipe.send(("collect", 10.0))
            for w in workers:
                got, lost = w.expect("collected", 30)
                times += got
                missing += lost
            cpu1 = cpu_seconds(pid)
            if r < args.warmup:
                continue
            cpu_total += cpu1 - cpu0
            result.missing += missing
            result.accepted_ms.append((t_accepted - t0) * 1000)
            if times:
                result.fanout_ms.append((max(times) - t0) * 1000)
        conn.close()
        result.cpu_ms_per_round = cpu_total / args.rounds * 1000
        time.sleep(0.5)
        for w in workers:
            w.pipe.send(("stats",))
        sizes: set[int] = set()
        for w in workers:
            dup, got_sizes = w.expect("stats")
            result.duplicates += dup
            sizes.update(got_sizes)
        result.payload = sorted(sizes)
    finally:
        for w in workers:
            w.finish(("stop",), 10)
    return result


def report(app: Result, base: Result, args: argparse.Namespace) -> str:
    n = args.users
    rows = [
        ("fan-out to last client p50 (ms)", app.p(0.5), base.p(0.5), ".1f"),
        ("fan-out to last client p99 (ms)", app.p(0.99), base.p(0.99), ".1f"),
        (
            "trigger 202 p50 (ms)",
            statistics.median(app.accepted_ms),
            statistics.median(base.accepted_ms),
            ".1f",
        ),
        ("notifications/s (N / p50 fan-out)", app.rate(n), base.rate(n), ",.0f"),
        ("server CPU per round (ms)", app.cpu_ms_per_round, base.cpu_ms_per_round, ".1f"),
    ]
    lines = [
        f"{n:,} subscribed clients in {args.workers} processes, {args.rounds} rounds "
        f"(+{args.warmup} warm-up); payload bytes mangahub {app.payload}, baseline {base.payload}",
        "",
        "| metric | mangahub | bare asyncio | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, a, b, fmt in rows:
        lines.append(f"| {label} | {a:{fmt}} | {b:{fmt}} | {ratio(a, b)} |")
    lines.append(
        f"| missing / duplicate NOTIFICATIONs | {app.missing} / {app.duplicates} "
        f"| {base.missing} / {base.duplicates} | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.5, help="idle seconds before a round")
    parser.add_argument("--serve-baseline", nargs=3, type=int, metavar=("UDP", "HTTP", "SIZE"))
    args = parser.parse_args()
    if args.serve_baseline:
        import uvloop

        uvloop.run(serve_baseline(*args.serve_baseline))
        return
    if args.quick:
        args.users, args.workers, args.rounds, args.warmup = 200, 2, 5, 1
    print(f"RLIMIT_NOFILE {raise_fd_limit()}", file=sys.stderr)
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="udp-bench-") as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        data_dir.mkdir()
        t = time.monotonic()
        manga_id, tokens = asyncio.run(prepare_data(data_dir, args.users))
        print(f"setup: {args.users} users in {time.monotonic() - t:.1f} s", file=sys.stderr)
        internal = (data_dir / "internal_token.secret").read_text().strip()
        headers = {"X-Internal-Token": internal, "Content-Type": "application/json"}

        udp_port, trig_port = free_port(socket.SOCK_DGRAM), free_port()
        env = dict(os.environ)
        env.update(
            MANGAHUB_DATA_DIR=str(data_dir),
            MANGAHUB_HOST="127.0.0.1",
            MANGAHUB_UDP_PORT=str(udp_port),
            MANGAHUB_TRIGGER_PORT=str(trig_port),
            MANGAHUB_BCRYPT_ROUNDS="10",
            MANGAHUB_SEED_CATALOG="false",
            MANGAHUB_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        cmd = [sys.executable, "-m", "mangahub", "serve", "udp"]
        with start_process(cmd, env, work / "mangahub.log", "trigger listening") as pid:
            app = run_rounds(
                "mangahub",
                pid,
                ("127.0.0.1", udp_port),
                trig_port,
                headers,
                manga_id,
                tokens,
                args,
            )
        print(f"mangahub done: p50 {app.p(0.5):.1f} ms", file=sys.stderr)

        size = max(app.payload) if app.payload else 300
        b_udp, b_http = free_port(socket.SOCK_DGRAM), free_port()
        cmd = [sys.executable, __file__, "--serve-baseline", str(b_udp), str(b_http), str(size)]
        env = dict(os.environ, PYTHONPATH=str(repo / "src"))
        with start_process(cmd, env, work / "baseline.log", "baseline listening") as pid:
            base = run_rounds(
                "baseline", pid, ("127.0.0.1", b_udp), b_http, headers, manga_id, tokens, args
            )
    print()
    print(report(app, base, args))
    print()
    print(f"python {platform.python_version()}, nproc {os.cpu_count()}")


if __name__ == "__main__":
    main()
