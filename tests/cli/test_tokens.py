"""Token handling end to end: automatic refresh near expiry, logout revoking on the
server and leaving nothing behind, the 0600 file fallback and the keyring path."""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mangahub.app import Runtime
from mangahub.cli.api import REFRESH_MARGIN, needs_refresh, token_expiry
from tests.cli.conftest import MANGAHUB, TEST_KEYRING, Cli, MakeCli, cli_factory, serve_env
from tests.conftest import Backend
from tests.live_server import LiveServer, live_server

pytestmark = pytest.mark.slow

SHORT_TTL = 120  # seconds: always under the 5-minute refresh margin


@pytest.fixture(scope="module")
def short_ttl_server(backend: Backend, runtime: Runtime) -> Iterator[LiveServer]:
    env = serve_env(backend, MANGAHUB_ACCESS_TOKEN_TTL_SECONDS=str(SHORT_TTL))
    with live_server(env, "api", startup_timeout=60) as server:
        yield server


@pytest.fixture
def short_cli(short_ttl_server: LiveServer, tmp_path: Path) -> MakeCli:
    return cli_factory(short_ttl_server, tmp_path)


def refresh_status(server: str, refresh_token: str) -> int:
    r = httpx.post(f"{server}/api/auth/refresh", json={"refresh_token": refresh_token}, timeout=10)
    return r.status_code


def keyring_entries(path: Path) -> dict[str, str]:
    return json.loads(path.read_text()) if path.exists() else {}


def test_token_expiry_is_read_without_verifying() -> None:
    # header.payload.signature with a garbage signature: only exp is read.
    payload = "eyJleHAiOjIwMDAwMDAwMDB9"  # {"exp":2000000000}
    token = f"eyJhbGciOiJIUzI1NiJ9.{payload}.not-a-signature"
    assert token_expiry(token) == 2_000_000_000
    assert needs_refresh(token, now=2_000_000_000 - REFRESH_MARGIN - 1) is False
    assert needs_refresh(token, now=2_000_000_000 - REFRESH_MARGIN + 1) is True
    assert needs_refresh("garbage") is True


def test_refresh_near_expiry_then_logout_revokes(short_cli: MakeCli) -> None:
    cli = short_cli()
    cli.register_and_login()
    first = cli.stored()
    exp = token_expiry(first["access_token"])
    assert exp is not None and exp - time.time() <= SHORT_TTL
    assert stat.S_IMODE(cli.credentials_file.stat().st_mode) == 0o600

    # The access token has under 5 minutes left: the command refreshes it first.
    listed = cli.run("library", "list", "--json").json()
    assert listed["data"] == []
    second = cli.stored()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert stat.S_IMODE(cli.credentials_file.stat().st_mode) == 0o600

    # Logout revokes the current refresh token and deletes the file's entry.
    out = cli.run("auth", "logout").ok()
    assert "logged out" in out.stdout
    assert not cli.credentials_file.exists()
    assert refresh_status(cli.server, second["refresh_token"]) == 401
    cli.run("library", "list").one_line_error(3, "not logged in")


def test_failed_refresh_says_session_expired(short_cli: MakeCli) -> None:
    cli = short_cli()
    cli.register_and_login()
    stored = cli.stored()
    # Revoked elsewhere (another device logged this session out).
    r = httpx.post(
        f"{cli.server}/api/auth/revoke", json={"refresh_token": stored["refresh_token"]}, timeout=10
    )
    assert r.status_code == 200
    result = cli.run("progress", "show")
    result.one_line_error(3, "session expired, run `mangahub auth login`")


def test_keyring_backend_holds_the_tokens(short_cli: MakeCli, tmp_path: Path) -> None:
    ring = tmp_path / "keyring.json"
    cli: Cli = short_cli(PYTHON_KEYRING_BACKEND=TEST_KEYRING, MANGAHUB_TEST_KEYRING=str(ring))
    cli.register_and_login()
    key = f"mangahub\n{cli.server}"
    entries = keyring_entries(ring)
    assert key in entries
    assert not cli.credentials_file.exists()  # nothing in the fallback file
    first = json.loads(entries[key])
    status = cli.run("auth", "status", "--json").json()
    assert status["stored_in"] == "keyring" and status["user"]["username"] == cli.username

    # status refreshed the short-lived token, in the keyring
    second = json.loads(keyring_entries(ring)[key])
    assert second["access_token"] != first["access_token"]

    cli.run("auth", "logout").ok()
    assert key not in keyring_entries(ring)
    assert not cli.credentials_file.exists()
    assert refresh_status(cli.server, second["refresh_token"]) == 401


def test_concurrent_commands_refresh_once_and_keep_the_session(short_cli: MakeCli) -> None:
    # Refresh tokens rotate and a reused one revokes the family: without the lock
    # between processes, the second command to refresh would log the user out.
    cli = short_cli()
    cli.register_and_login()
    first = cli.stored()
    commands = [
        subprocess.Popen(
            [MANGAHUB, "library", "list", "--json"],
            env=cli.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outcomes = [(c.communicate(timeout=60)[1], c.returncode) for c in commands]
    assert outcomes == [("", 0)] * 4
    latest = cli.stored()
    assert latest["refresh_token"] != first["refresh_token"]
    cli.run("library", "list", "--json").ok()  # the session survived
