"""An operator resets a password (``mangahub users reset-password``), and a changed
``admin_password`` on an existing admin is reported instead of silently ignored."""

from __future__ import annotations

import logging
import subprocess
import sys

import httpx
import pytest

from mangahub.app import Runtime, build_runtime
from tests.conftest import Backend, MakeUser


def reset(backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mangahub", "users", "reset-password", *args],
        env=backend.process_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def login(client: httpx.AsyncClient, username: str, password: str) -> int:
    r = await client.post("/api/auth/login", json={"username": username, "password": password})
    return r.status_code


async def test_reset_password_sets_a_new_one_and_ends_every_session(
    backend: Backend, runtime: Runtime, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("reset")
    done = reset(backend, user.username)
    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith("New password of")]
    new_password = line.rsplit(": ", 1)[1]
    assert await login(client, user.username, user.password) == 401
    assert await login(client, user.username, new_password) == 200
    r = await client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert r.status_code == 401, r.text  # the old session is over

    unknown = reset(backend, "nobody_like_this")
    assert unknown.returncode == 1
    assert "Traceback" not in unknown.stderr
    assert "no user named 'nobody_like_this'" in unknown.stderr


async def test_a_changed_admin_password_is_reported(
    backend: Backend, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mangahub.app")
    settings = backend.settings(admin_password="not-the-admins-password", seed_catalog=False)
    async with build_runtime(settings):
        pass
    assert any("admin_password is set but" in r.getMessage() for r in caplog.records)
