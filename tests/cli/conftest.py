"""Fixtures for CLI tests: a live ``mangahub serve`` on ephemeral ports and a
:class:`Cli` that runs the real ``mangahub`` executable against it, each with its own
home directory (credentials, daemon files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from mangahub.app import Runtime
from tests.conftest import Backend
from tests.live_server import LiveServer, live_server

REPO = Path(__file__).resolve().parents[2]
MANGAHUB = str(Path(sys.executable).with_name("mangahub"))
TEST_KEYRING = "tests.cli.keyring_backend.JsonFileKeyring"
PASSWORD = "correct-horse-battery"
NOWHERE = "http://127.0.0.1:9"


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def ok(self) -> Result:
        assert self.returncode == 0, f"{self.args} → {self.returncode}\n{self.stdout}{self.stderr}"
        return self

    def json(self) -> Any:
        return json.loads(self.ok().stdout)

    def one_line_error(self, code: int, *fragments: str) -> None:
        """Failed with ``code`` and exactly one ``error:`` line on stderr, no traceback."""
        assert self.returncode == code, f"{self.args} → {self.returncode}\n{self.stderr}"
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), self.stderr
        assert "Traceback" not in self.stderr + self.stdout
        for fragment in fragments:
            assert fragment in lines[0], lines[0]


@dataclass
class Cli:
    """One user's terminal: its own MANGAHUB_HOME, pointed at one server."""

    home: Path
    server: str
    tcp: str
    udp: str
    extra: dict[str, str] = field(default_factory=dict)
    username: str = ""

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("MANGAHUB_") and k != "PYTHON_KEYRING_BACKEND"
        }
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / "xdg"),
            MANGAHUB_HOME=str(self.home / "mangahub"),
            MANGAHUB_SERVER=self.server,
            MANGAHUB_TCP=self.tcp,
            MANGAHUB_UDP=self.udp,
            PYTHONPATH=str(REPO),
            COLUMNS="200",
            TERM="dumb",
        )
        env.update(self.extra)
        return env

    @property
    def mangahub_home(self) -> Path:
        return self.home / "mangahub"

    @property
    def credentials_file(self) -> Path:
        return self.mangahub_home / "credentials.json"

    def run(self, *args: str, timeout: float = 60) -> Result:
        done = subprocess.run(
            [MANGAHUB, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Result(args, done.returncode, done.stdout, done.stderr)

    def invoke(self, *args: str) -> Result:
        """The same command in this process (Typer's runner): much faster than a new
        interpreter, for commands that need no process of their own."""
        from mangahub.cli.main import app

        env: dict[str, str | None] = dict(self.env())
        env.update({k: None for k in os.environ if k not in env})
        done = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
        return Result(args, done.exit_code, done.stdout, done.stderr)

    def stored(self) -> dict[str, Any]:
        """The credentials the fallback file holds for this server."""
        entries: dict[str, Any] = json.loads(self.credentials_file.read_text())
        return dict(entries[self.server])

    def register_and_login(self, prefix: str = "cli") -> str:
        self.username = f"{prefix}_{uuid.uuid4().hex[:10]}"
        email = f"{self.username}@example.com"
        self.run("auth", "register", self.username, "--email", email, "-p", PASSWORD).ok()
        self.run("auth", "login", self.username, "-p", PASSWORD).ok()
        return self.username


MakeCli = Callable[..., Cli]


def cli_factory(server: LiveServer, tmp_path: Path) -> MakeCli:
    def make(**extra: str) -> Cli:
        home = tmp_path / f"home-{uuid.uuid4().hex[:8]}"
        home.mkdir()
        # A server running only some parts: the others point nowhere useful.
        tcp = "{}:{}".format(*server.addresses.get("tcp", ("127.0.0.1", 9)))
        udp = "{}:{}".format(*server.addresses.get("udp", ("127.0.0.1", 9)))
        grpc = "{}:{}".format(*server.addresses.get("grpc", ("127.0.0.1", 9)))
        return Cli(home, server.http_url, tcp, udp, {"MANGAHUB_GRPC": grpc, **extra})

    return make


def serve_env(backend: Backend, **extra: str) -> dict[str, str]:
    """The server's environment: the session's database and secrets; external sources
    pointed at a closed local port, so nothing here ever calls out."""
    return backend.process_env(MANGAHUB_MANGADEX_URL=NOWHERE, **extra)


@pytest.fixture(scope="module")
def cli_server(backend: Backend, runtime: Runtime) -> Iterator[LiveServer]:
    """All of MangaHub in one process, sharing the session's database (the runtime
    fixture has migrated and seeded it). Ready once every listener is announced."""
    with live_server(serve_env(backend), startup_timeout=60, wait_for="grpc") as server:
        yield server


@pytest.fixture
def make_cli(cli_server: LiveServer, tmp_path: Path) -> MakeCli:
    return cli_factory(cli_server, tmp_path)


def internal_token(backend: Backend, runtime: Runtime) -> str:
    assert runtime.settings.internal_token is not None
    return runtime.settings.internal_token.get_secret_value()


def trigger_new_chapter(
    server: LiveServer, token: str, manga_id: int, title: str, chapter: float
) -> int:
    host, port = server.addresses["trigger"]
    r = httpx.post(
        f"http://{host}:{port}/notify/new-chapter",
        json={"manga_id": manga_id, "title": title, "chapter": chapter, "old_chapter": chapter - 1},
        headers={"X-Internal-Token": token},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    recipients: int = r.json()["recipients"]
    return recipients


def wait_for(check: Callable[[], Any], timeout: float = 20, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")
