"""A real ``mangahub serve`` subprocess on ephemeral ports, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

LISTEN_LINE = re.compile(r"^mangahub (\w+) listening on ([\d.]+):(\d+)$")


@dataclass
class LiveServer:
    process: subprocess.Popen[str]
    addresses: dict[str, tuple[str, int]]
    output: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        host, port = self.addresses["http"]
        return f"http://{host}:{port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


# Every test client comes from 127.0.0.1 and every process of a run shares one count
# per address (in Redis): the per-address limits have tests of their own, with their own
# addresses or settings, so the rest of the suite lifts them.
TEST_LIMITS = {
    "REGISTER_MAX_PER_ADDRESS": "1000000",
    "FEDERATED_ANONYMOUS_PER_MINUTE": "1000000",
    "LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
}


def server_env(
    data_dir: Path,
    database_url: str | None,
    redis_url: str | None,
    redis_namespace: str,
    **extra: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANGAHUB_")}
    env.update(
        MANGAHUB_HOST="127.0.0.1",
        MANGAHUB_HTTP_PORT="0",
        MANGAHUB_TCP_PORT="0",
        MANGAHUB_UDP_PORT="0",
        MANGAHUB_GRPC_PORT="0",
        MANGAHUB_TRIGGER_PORT="0",
        MANGAHUB_DATA_DIR=str(data_dir),
        MANGAHUB_BCRYPT_ROUNDS="10",
        MANGAHUB_REDIS_NAMESPACE=redis_namespace,
        # Tests never reach the internet: a test that wants a source points it at the fake.
        # (an empty URL turns a source off).
        MANGAHUB_MANGADEX_URL="",
        MANGAHUB_ANILIST_URL="",
        **{f"MANGAHUB_{name}": value for name, value in TEST_LIMITS.items()},
    )
    if database_url:
        env["MANGAHUB_DATABASE_URL"] = database_url
    if redis_url:
        env["MANGAHUB_REDIS_URL"] = redis_url
    env.update(extra)
    return env


@contextmanager
def live_server(
    env: dict[str, str],
    *args: str,
    cwd: Path | None = None,
    startup_timeout: float = 60,
    wait_for: str = "http",
) -> Iterator[LiveServer]:
    """Start ``mangahub serve ARGS`` and wait until the ``wait_for`` listener (default
    the HTTP one; say ``"tcp"`` for ``serve tcp``) is announced."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mangahub", "serve", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = LiveServer(process, {})
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            server.output.append(line)
            match = LISTEN_LINE.match(line)
            if match:
                server.addresses[match[1]] = (match[2], int(match[3]))
                if match[1] == wait_for:
                    ready.set()
        ready.set()  # the process ended: unblock the waiter, which then reports it

    pumper = threading.Thread(target=pump, daemon=True)
    pumper.start()
    deadline = time.monotonic() + startup_timeout
    try:
        started = ready.wait(max(0.0, deadline - time.monotonic()))
        if not started or wait_for not in server.addresses:
            raise RuntimeError("server did not start:\n" + "\n".join(server.output[-40:]))
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        pumper.join(5)  # it reads to the end of the output, then the pipe can be closed
        if process.stdout is not None and not pumper.is_alive():
            process.stdout.close()


@asynccontextmanager
async def live_api(env: dict[str, str], startup_timeout: float = 45) -> AsyncIterator[LiveServer]:
    """``mangahub serve api`` (:func:`live_server`), started and stopped off the event
    loop, for tests whose clients run on it."""
    manager = live_server(env, "api", startup_timeout=startup_timeout)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


def free_port() -> int:
    """A TCP port nothing listens on right now (also: a port that refuses connections)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
