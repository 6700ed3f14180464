"""`mangahub serve` as an operator runs it: a real process, real sockets, real signals."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Backend
from tests.live_server import live_server, server_env

pytestmark = pytest.mark.slow


def test_fresh_start_serves_real_catalog_and_prints_admin_password_once(
    backend: Backend, tmp_path: Path
) -> None:
    # A fresh data dir; on PostgreSQL the run's database already has an admin, so the
    # password line is only asserted for the embedded default.
    env = server_env(
        tmp_path / "data", backend.database_url, backend.redis_url, backend.redis_namespace
    )
    with live_server(env, "api", cwd=tmp_path) as server:
        r = httpx.get(f"{server.http_url}/api/manga", params={"q": "one"}, timeout=10)
        assert r.status_code == 200
        body = r.json()
        assert body["total"] > 0
        titles = [m["title"] for m in body["data"]]
        assert any("one" in t.lower() for t in titles), titles
        assert httpx.get(f"{server.http_url}/healthz", timeout=10).json() == {"status": "ok"}
        assert server.stop() == 0
    first_output = "\n".join(server.output)
    assert "shutting down" in first_output
    if backend.database_url is None:
        assert "generated password" in first_output
        assert (tmp_path / "data" / "jwt_secret.secret").stat().st_mode & 0o777 == 0o600

    with live_server(env, "api", cwd=tmp_path) as again:
        assert httpx.get(f"{again.http_url}/healthz", timeout=10).status_code == 200
    assert "generated password" not in "\n".join(again.output)


def test_sigterm_drains_in_flight_requests(backend: Backend, tmp_path: Path) -> None:
    env = server_env(
        tmp_path / "data", backend.database_url, backend.redis_url, backend.redis_namespace
    )
    with live_server(env, "api", cwd=tmp_path) as server:
        url = f"{server.http_url}/api/manga/advanced-search"
        results: list[int] = []

        def hammer() -> None:
            with httpx.Client(timeout=10) as client:
                for _ in range(30):
                    try:
                        results.append(client.get(url, params={"sort_by": "title"}).status_code)
                    except httpx.TransportError:
                        return  # the listener is closed: later requests are refused

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(0.3)
        assert server.stop(signal.SIGTERM) == 0
        for w in workers:
            w.join(10)
    # Every request that got an answer got a complete, successful one.
    assert results and set(results) == {200}


def test_bad_config_file_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "mangahub", "serve", "--config", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "config file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("part", "words"), [("nope", "is unknown")])
def test_unavailable_or_unknown_part_is_a_clear_error(part: str, words: str) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "mangahub", "serve", part],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr
