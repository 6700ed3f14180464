"""scripts/healthcheck.py, the container probe of each part, against a real
``mangahub serve`` (healthy) and against ports where nothing answers (unhealthy)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Backend
from tests.deploy.conftest import wait_for_listeners
from tests.live_server import LiveServer, free_port, live_server

pytestmark = pytest.mark.slow

PROBE = Path(__file__).resolve().parents[2] / "scripts" / "healthcheck.py"


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROBE), *args, "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture(scope="module")
def server(backend: Backend) -> Iterator[LiveServer]:
    env = backend.process_env(MANGAHUB_MANGADEX_ENABLED="false", MANGAHUB_ANILIST_ENABLED="false")
    with live_server(env, startup_timeout=60) as running:
        wait_for_listeners(running)
        yield running


def target(server: LiveServer, name: str) -> str:
    host, port = server.addresses[name]
    return f"{host}:{port}"


async def test_each_part_probes_healthy(server: LiveServer) -> None:
    checks = [
        ("http", f"{server.http_url}/healthz"),
        ("tcp", target(server, "tcp")),
        ("udp", target(server, "udp")),
        ("grpc", target(server, "grpc")),
    ]
    results = await asyncio.gather(*(asyncio.to_thread(probe, *check) for check in checks))
    for check, result in zip(checks, results, strict=True):
        assert result.returncode == 0, (check, result.stderr)


async def test_probes_fail_where_nothing_answers() -> None:
    closed = f"127.0.0.1:{free_port()}"
    checks = [
        ("http", f"http://{closed}/healthz"),
        ("tcp", closed),
        ("udp", closed),
        ("grpc", closed),
    ]
    results = await asyncio.gather(*(asyncio.to_thread(probe, *check) for check in checks))
    for check, result in zip(checks, results, strict=True):
        assert result.returncode == 1, check
        assert result.stderr.startswith("unhealthy: "), (check, result.stderr)
