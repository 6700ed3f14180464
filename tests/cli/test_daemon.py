"""``sync connect|status|disconnect``: the background daemon mirrors progress written
elsewhere, and updates queued while the server is down reach it after a restart."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mangahub.app import Runtime
from mangahub.cli.output import EXIT_BAD_INPUT, EXIT_NOT_FOUND
from tests.cli.conftest import PASSWORD, Cli, MakeCli, cli_factory, serve_env, wait_for
from tests.conftest import Backend
from tests.live_server import LiveServer, free_port, live_server

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def stopped_daemon(cli: Cli) -> Iterator[None]:
    """Whatever happens, the daemon this test started does not outlive it."""
    try:
        yield
    finally:
        pid_file = cli.mangahub_home / "syncd.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def status(cli: Cli) -> dict[str, Any]:
    result: dict[str, Any] = cli.invoke("sync", "status", "--json").json()
    return result


def test_daemon_mirrors_progress_and_delivers_queue_after_restart(
    backend: Backend, runtime: Runtime, tmp_path: Path
) -> None:
    # Fixed ports, so the restarted server is found at the same addresses.
    env = serve_env(
        backend, MANGAHUB_HTTP_PORT=str(free_port()), MANGAHUB_TCP_PORT=str(free_port())
    )
    manager = live_server(env, startup_timeout=60, wait_for="grpc")
    server: LiveServer = manager.__enter__()
    running = True
    try:
        cli = cli_factory(server, tmp_path)()
        cli.register_and_login("syncd")
        manga_id = cli.invoke("manga", "search", "--limit", "1", "--json").json()["data"][0]["id"]
        key = str(manga_id)

        with stopped_daemon(cli):
            connected = cli.run("sync", "connect", "--json").json()
            log = (cli.mangahub_home / "syncd.log").read_text()
            assert connected["running"] is True and connected["status"] == "connected", log
            assert connected["session_id"]
            human = cli.invoke("sync", "status").ok().stdout
            assert "connected" in human and connected["session_id"] in human

            # Progress written over HTTP by another client shows up in the daemon's state.
            login = httpx.post(
                f"{server.http_url}/api/auth/login",
                json={"username": cli.username, "password": PASSWORD},
                timeout=10,
            ).json()
            phone = {"Authorization": f"Bearer {login['access_token']}"}
            r = httpx.put(
                f"{server.http_url}/api/users/progress",
                json={"manga_id": manga_id, "chapter": 7.5},
                headers=phone,
                timeout=10,
            )
            assert r.status_code == 200, r.text
            pushed = r.json()
            seen = wait_for(lambda: status(cli)["progress"].get(key), timeout=15)
            assert seen["chapter"] == 7.5 and seen["version"] == pushed["version"]
            assert status(cli)["last_version"] >= pushed["version"]

            # While connected, `progress update` goes through the daemon and is acked.
            via_daemon = cli.invoke("progress", "update", key, "8", "--json").json()
            assert via_daemon["chapter"] == 8 and via_daemon["version"] == pushed["version"] + 1

            # The server goes away; updates made meanwhile are queued on disk.
            server.stop()
            manager.__exit__(None, None, None)
            running = False
            wait_for(lambda: status(cli)["status"] != "connected", timeout=15)
            for chapter in ("9", "10"):
                queued = cli.invoke("progress", "update", key, chapter, "--wait", "0.5", "--json")
                assert queued.json()["queued"] is True
            assert status(cli)["pending"] == 2

            # Same data, same ports: the daemon reconnects and sends both, in order.
            manager = live_server(env, startup_timeout=60, wait_for="grpc")
            server = manager.__enter__()
            running = True
            wait_for(lambda: status(cli)["pending"] == 0, timeout=45)
            after = status(cli)
            assert after["status"] == "connected" and after["connections"] >= 2
            r = httpx.get(
                f"{server.http_url}/api/users/progress/{manga_id}", headers=phone, timeout=10
            )
            assert r.status_code == 200
            final = r.json()
            assert final["chapter"] == 10
            assert final["version"] == via_daemon["version"] + 2  # each sent once, 9 then 10

            stopped = cli.run("sync", "disconnect", "--json").json()
            assert stopped["stopped"] is True
            assert status(cli)["running"] is False
            assert not (cli.mangahub_home / "syncd.pid").exists()
    finally:
        if running:
            manager.__exit__(None, None, None)


def test_sync_status_when_not_running(tmp_path: Path) -> None:
    cli = Cli(tmp_path, "http://127.0.0.1:9", "127.0.0.1:9", "127.0.0.1:9")
    report = status(cli)
    assert report["running"] is False and report["status"] == "stopped"
    assert "not running" in cli.invoke("sync", "status").ok().stdout
    assert "not running" in cli.invoke("sync", "disconnect").ok().stdout


def test_refused_update_through_daemon_says_why(make_cli: MakeCli) -> None:
    cli = make_cli()
    cli.register_and_login("refused")
    found = cli.invoke("manga", "search", "--limit", "50", "--json").json()["data"]
    counted = next(m for m in found if m.get("total_chapters"))
    with stopped_daemon(cli):
        assert cli.run("sync", "connect", "--json").json()["status"] == "connected"
        # A long --wait: the refusal must end the command, not the wait running out.
        unknown = cli.run("progress", "update", "2147483000", "1", "--wait", "120", timeout=30)
        unknown.one_line_error(EXIT_NOT_FOUND, "refused", "manga not found")
        beyond = str(counted["total_chapters"] + 5)
        over = cli.run(
            "progress", "update", str(counted["id"]), beyond, "--wait", "120", timeout=30
        )
        over.one_line_error(
            EXIT_BAD_INPUT, "refused", f"beyond this manga's {counted['total_chapters']}"
        )
        assert status(cli)["pending"] == 0
        # A good one still goes through the daemon.
        done = cli.invoke("progress", "update", str(counted["id"]), "1", "--json").json()
        assert done["chapter"] == 1


def test_logout_disconnects_the_daemon(make_cli: MakeCli) -> None:
    cli = make_cli()
    cli.register_and_login("logout")
    with stopped_daemon(cli):
        connected = cli.run("sync", "connect", "--json").json()
        assert connected["status"] == "connected"
        out = cli.run("auth", "logout").ok().stdout
        assert f"sync daemon {connected['pid']} stopped" in out
        assert status(cli)["running"] is False
        assert not (cli.mangahub_home / "syncd.pid").exists()
