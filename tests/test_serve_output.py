"""What `mangahub serve` tells the operator: one line per listener, and an HTTP access
log when asked for (``http_access_log``)."""

from __future__ import annotations

import collections
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Backend
from tests.live_server import LiveServer, live_server, server_env

pytestmark = pytest.mark.slow

# Any line announcing a listener, printed or logged.
LISTENER = re.compile(r"\b(\w+) listening on ")


def _wait_for_line(server: LiveServer, needle: str, timeout: float = 10) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next((line for line in server.output if needle in line), None)
        if found is not None:
            return found
        time.sleep(0.05)
    return None


def test_each_part_is_announced_once_and_sync_does_not_claim_a_port(
    backend: Backend, tmp_path: Path
) -> None:
    env = server_env(
        tmp_path / "data", backend.database_url, backend.redis_url, backend.redis_namespace
    )
    with live_server(env, cwd=tmp_path, wait_for="grpc") as server:
        assert _wait_for_line(server, "mangahub sync running") is not None
        assert server.stop() == 0
    said = [LISTENER.search(line) for line in server.output]
    announced = collections.Counter(match[1] for match in said if match)
    assert announced == dict.fromkeys(("http", "tcp", "udp", "trigger", "grpc"), 1), server.output
    assert sum("mangahub sync running" in line for line in server.output) == 1


def test_http_access_log_is_off_by_default_and_on_when_asked(
    backend: Backend, tmp_path: Path
) -> None:
    base = server_env(
        tmp_path / "data", backend.database_url, backend.redis_url, backend.redis_namespace
    )
    for enabled in (False, True):
        env = {**base, "MANGAHUB_HTTP_ACCESS_LOG": "true" if enabled else "false"}
        with live_server(env, "api", cwd=tmp_path) as server:
            r = httpx.get(f"{server.http_url}/healthz", params={"probe": "x"}, timeout=10)
            assert r.status_code == 200
            line = _wait_for_line(server, '"GET /healthz?probe=x" 200', timeout=3 if enabled else 1)
        if enabled:
            assert line is not None, server.output
            assert "mangahub.access" in line and "127.0.0.1" in line
        else:
            assert line is None, server.output
