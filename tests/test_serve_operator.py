"""What an operator sees when ``mangahub serve`` cannot start, and the generated admin
password: shown once serving, kept in an owner-only file either way."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKEND, Backend
from tests.live_server import live_server, server_env

pytestmark = pytest.mark.slow


def serve_once(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mangahub", "serve", "api"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_port_in_use_is_one_line_and_a_failure_and_the_password_is_kept(
    backend: Backend, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    env = server_env(data_dir, backend.database_url, backend.redis_url, backend.redis_namespace)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env["MANGAHUB_HTTP_PORT"] = str(taken.getsockname()[1])
        done = serve_once(env, tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "address already in use" in errors[0].lower(), done.stderr
    # Never shown by a start that failed...
    assert "password" not in done.stdout + done.stderr
    if BACKEND != "sqlite":
        return  # the run's shared database already has its admin
    kept = data_dir / "admin_password"
    assert kept.stat().st_mode & 0o777 == 0o600
    password = kept.read_text().strip()
    assert len(password) >= 16

    # ...but once serving, the next start says where it is kept.
    env["MANGAHUB_HTTP_PORT"] = "0"
    with live_server(env, "api", cwd=tmp_path) as server:
        assert server.stop() == 0
    output = "\n".join(server.output)
    assert f"password of user 'admin' is kept in {kept}" in output
    assert password not in output
