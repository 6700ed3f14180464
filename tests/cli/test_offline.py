"""Commands with the server down: what is queued, what is refused before it could be,
and what a stale daemon pid file no longer makes the client believe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import NOWHERE, Cli

FAR_FUTURE_TOKEN = "e30.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln"  # exp 2100-01-01, never refreshed


@pytest.fixture
def offline(tmp_path: Path) -> Cli:
    """A user logged in to a server that is down (tokens in the fallback file)."""
    cli = Cli(
        tmp_path,
        NOWHERE,
        "127.0.0.1:9",
        "127.0.0.1:9",
        {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"},
    )
    cli.mangahub_home.mkdir(mode=0o700)
    entry = {"access_token": FAR_FUTURE_TOKEN, "refresh_token": "r", "username": "reader"}
    cli.credentials_file.write_text(json.dumps({NOWHERE: entry}))
    cli.credentials_file.chmod(0o600)
    return cli


def test_an_update_is_queued_while_the_server_is_down(offline: Cli) -> None:
    queued = offline.invoke("progress", "update", "7", "12.5", "--json").json()
    assert queued["queued"] is True and queued["pending"] == 1 and queued["chapter"] == 12.5
    # No --status: the entry keeps its own when the update is finally sent.
    assert (queued["status"], queued["volume"]) == (None, None)
    again = offline.invoke("progress", "update", "7", "13", "--volume", "2", "--status", "dropped")
    again.ok()
    stored = offline.invoke("progress", "update", "7", "14", "--json").json()
    assert stored["pending"] == 3


@pytest.mark.parametrize("chapter", ["inf", "1e400"])
def test_an_infinite_chapter_is_refused_in_plain_words(offline: Cli, chapter: str) -> None:
    result = offline.invoke("progress", "update", "7", chapter)
    result.one_line_error(2, "chapter must be a finite number")
    assert not (offline.mangahub_home / "outbox.db").exists()  # nothing queued


def test_an_id_beyond_the_servers_range_is_refused_before_queueing(offline: Cli) -> None:
    result = offline.invoke("progress", "update", str(2**63), "1")
    assert result.returncode == 2, result.stderr
    assert "manga_id" in result.stderr and "2147483647" in result.stderr
    assert not (offline.mangahub_home / "outbox.db").exists()


def test_a_damaged_queue_is_named_not_a_crash(offline: Cli) -> None:
    (offline.mangahub_home / "outbox.db").write_bytes(b"garbage" * 1000)
    result = offline.invoke("progress", "update", "7", "1")
    result.one_line_error(1, "outbox.db", "move it aside")


def test_a_stale_pid_file_does_not_make_disconnect_kill_a_stranger(offline: Cli) -> None:
    # The daemon died without cleaning up; the pid now belongs to another program.
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        (offline.mangahub_home / "syncd.pid").write_text(f"{stranger.pid}\n")
        assert offline.invoke("sync", "status", "--json").json()["running"] is False
        assert "not running" in offline.invoke("sync", "disconnect").ok().stdout
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_the_daemon_names_a_damaged_queue_and_leaves_no_pid_file(offline: Cli) -> None:
    (offline.mangahub_home / "outbox.db").write_bytes(b"garbage" * 1000)
    done = subprocess.run(
        [sys.executable, "-m", "mangahub.cli.syncd", "--server", NOWHERE, "--tcp", "127.0.0.1:9"],
        env=offline.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "move it aside" in done.stderr and "Traceback" not in done.stderr
    assert not (offline.mangahub_home / "syncd.pid").exists()


def test_a_wake_up_right_after_the_daemon_starts_does_not_kill_it(offline: Cli) -> None:
    daemon = subprocess.Popen(
        [sys.executable, "-m", "mangahub.cli.syncd", "--server", NOWHERE, "--tcp", "127.0.0.1:9"],
        env=offline.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pid_file = offline.mangahub_home / "syncd.pid"
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.0005)
        # What `progress update` does as soon as it sees the pid file.
        os.kill(daemon.pid, signal.SIGUSR1)
        time.sleep(1)
        assert daemon.poll() is None, daemon.returncode  # still retrying the dead server
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=20) == 0  # SIGTERM: a clean stop


def test_status_says_why_the_daemon_stopped(offline: Cli) -> None:
    # What the daemon leaves behind when the server refused its session for good.
    state = {"pid": 1, "server": NOWHERE, "status": "error", "error": "session expired [x]"}
    (offline.mangahub_home / "syncd.json").write_text(json.dumps(state))
    human = offline.invoke("sync", "status").ok().stdout
    assert "not running" in human and "session expired [x]" in human
