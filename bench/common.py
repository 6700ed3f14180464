"""Pieces every load benchmark shares: file limits, ports, ratios, server and client
processes, reading a process's memory and CPU time, and the PostgreSQL database a
run is given."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


async def ensure_postgres_database(url: str) -> bool:
    """Create the database of a PostgreSQL SQLAlchemy ``url`` if it does not exist
    (through the server's ``postgres`` database); True when it was created."""
    import asyncpg
    from sqlalchemy import make_url

    target = make_url(url)
    name = target.database
    if not name:
        raise SystemExit(f"no database name in {url}")
    admin_url = target.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin_url.render_as_string(hide_password=False), timeout=10)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        quoted = name.replace('"', '""')
        await conn.execute(f'CREATE DATABASE "{quoted}"')
        return True
    finally:
        await conn.close()


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (thousands of sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ratio(app: float, base: float) -> str:
    """MangaHub's number over the baseline's, as printed in every table."""
    return f"{app / base:.2f}x" if base else "n/a"


class ClientProcess:
    """A load-generating client process and the pipe that drives it.

    The target is called as ``target(pipe, *args)`` in a spawned process; it answers
    each phase with ``(kind, value)`` and ``("done", None)`` when told to stop.
    """

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child, *args), daemon=True)
        self.process.start()

    def expect(self, kind: str, timeout: float = 120) -> Any:
        if not self.pipe.poll(timeout):
            raise RuntimeError(f"worker did not answer {kind!r} in {timeout} s")
        got, value = self.pipe.recv()
        if got != kind:
            raise RuntimeError(f"expected {kind!r} from worker, got {got!r}")
        return value

    def finish(self, command: Any = "stop", timeout: float = 20) -> None:
        with contextlib.suppress(RuntimeError, EOFError, OSError):
            self.pipe.send(command)
            self.expect("done", timeout)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ServerProc:
    """A server under test, running as its own process."""

    name: str
    process: subprocess.Popen[bytes]
    port: int

    def rss_kib(self) -> int:
        return rss_kib(self.process.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)


@contextlib.contextmanager
def server_process(
    name: str,
    cmd: list[str],
    log_path: Path,
    ready: Callable[[], bool],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 90,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd`` with its output in ``log_path``, wait until ``ready()``, and stop it
    with SIGTERM (then SIGKILL) on exit."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            deadline = time.monotonic() + timeout
            while not ready():
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} did not start: {tail}")
                time.sleep(0.05)
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def logged(log_path: Path, words: bytes = b"listening on") -> Callable[[], bool]:
    """A ``ready`` check: the server has written ``words`` to its log."""
    return lambda: log_path.exists() and words in log_path.read_bytes()
