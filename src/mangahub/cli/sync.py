"""``mangahub sync connect|status|disconnect``: the background TCP sync daemon."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Annotated, Any

import typer
from rich.text import Text

from mangahub.cli import daemon_files
from mangahub.cli.api import Unreachable
from mangahub.cli.common import JsonOpt, ServerOpt, TcpOpt, api, endpoints
from mangahub.cli.outbox import Outbox
from mangahub.cli.output import (
    EXIT_ERROR,
    CliError,
    console,
    escape,
    fields,
    handle_errors,
    info,
    print_json,
    table,
)
from mangahub.cli.paths import private_dir, state_dir

app = typer.Typer(
    help="Keep reading progress in sync over TCP, in the background.", no_args_is_help=True
)


@app.command()
@handle_errors
def connect(
    server: ServerOpt = None,
    tcp: TcpOpt = None,
    device: Annotated[
        str | None, typer.Option("--device", help="Name of this device (default: host name).")
    ] = None,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the session.")] = 10,
    json: JsonOpt = False,
) -> None:
    """Start the sync daemon: it stays connected, reconnects with backoff, resumes from
    the last version it saw and sends progress updates queued while offline.

    Example: mangahub sync connect --tcp manga.example:8081
    """
    pid = daemon_files.running_pid()
    if pid is not None:
        raise CliError(f"the sync daemon is already running (pid {pid})", EXIT_ERROR)
    where = endpoints(server, tcp)
    with api(where.server) as client:
        try:
            client.access_token()  # logged in, session alive? (refreshed if need be)
        except Unreachable:
            pass  # the daemon starts anyway and keeps trying
    private_dir(state_dir())
    if _other_server(where.server):
        daemon_files.state_file().unlink(missing_ok=True)  # versions of another server
    before = daemon_files.read_state().get("started_at")
    command = [
        sys.executable,
        "-m",
        "mangahub.cli.syncd",
        "--server",
        where.server,
        "--tcp",
        f"{where.tcp[0]}:{where.tcp[1]}",
        "--device",
        device or socket.gethostname(),
    ]
    with open(daemon_files.log_file(), "ab") as log:
        # A session of its own: the daemon outlives this shell and ignores its Ctrl+C.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    state = _await_session(process, before, wait)
    if json:
        print_json(_status(state, process.pid))
    elif state.get("status") == "connected":
        console.print(
            f"[green]✓[/green] sync daemon {process.pid} connected to "
            f"{state['tcp']} (session {state['session_id']})"
        )
    else:
        info(
            f"sync daemon {process.pid} started; not connected yet "
            f"({state.get('error') or 'connecting'}) — it keeps retrying"
        )
    if state.get("status") == "error":
        raise CliError(str(state.get("error")), EXIT_ERROR)


def _other_server(server: str) -> bool:
    known = daemon_files.read_state().get("server")
    return known is not None and known != server


def _await_session(process: subprocess.Popen[bytes], before: Any, wait: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            state = daemon_files.read_state()
            if state.get("pid") != process.pid:
                raise CliError(
                    f"the sync daemon exited at once; see {daemon_files.log_file()}", EXIT_ERROR
                )
            return state
        state = daemon_files.read_state()
        if state.get("pid") == process.pid and state.get("started_at") != before:
            if state.get("status") in ("connected", "error"):
                return state
        time.sleep(0.1)
    return state


@app.command()
@handle_errors
def status(json: JsonOpt = False) -> None:
    """Show the daemon: connection, session, last version, uptime, queued updates.

    Example: mangahub sync status --json
    """
    pid = daemon_files.running_pid()
    state = daemon_files.read_state()
    report = _status(state, pid)
    if json:
        print_json(report)
        return
    if pid is None:
        console.print("sync daemon: [yellow]not running[/yellow] (start it with `sync connect`)")
        if state.get("status") == "error":  # why it stopped, e.g. the session expired
            console.print(f"it stopped on an error: {escape(str(report['error']))}")
        if report["pending"]:
            console.print(f"{report['pending']} progress update(s) queued")
        return
    color = "green" if report["status"] == "connected" else "yellow"
    fields(
        "Sync daemon",
        [
            ("status", Text(str(report["status"]), style=color)),
            ("pid", pid),
            ("server", report["server"]),
            ("tcp", report["tcp"]),
            ("session", report["session_id"]),
            ("last version", report["last_version"]),
            ("uptime", _duration(report["uptime_seconds"])),
            ("connected for", _duration(report["connected_seconds"])),
            ("reconnects", max(0, int(report["connections"] or 0) - 1)),
            ("queued updates", report["pending"]),
            ("sent", report["sent"]),
            ("last error", report["error"]),
        ],
    )
    progress = report["progress"]
    if progress:
        rows = sorted(progress.values(), key=lambda p: str(p.get("updated_at")), reverse=True)
        table(
            "Progress seen",
            ["manga", "chapter", "status", "version", "device", "updated"],
            (
                (
                    p["manga_id"],
                    p["chapter"],
                    p["status"],
                    p["version"],
                    p.get("device"),
                    p.get("updated_at"),
                )
                for p in rows[:10]
            ),
        )


def _status(state: dict[str, Any], pid: int | None) -> dict[str, Any]:
    now = time.time()
    running = pid is not None and state.get("pid") == pid
    server = state.get("server")
    pending = 0
    if server:
        outbox = Outbox()
        try:
            pending = outbox.count(server)
        finally:
            outbox.close()
    since = state.get("connected_since")
    return {
        "running": running,
        "pid": pid if running else None,
        "status": state.get("status", "stopped") if running else "stopped",
        "server": server,
        "tcp": state.get("tcp"),
        "device": state.get("device"),
        "session_id": state.get("session_id") if running else None,
        "user_id": state.get("user_id"),
        "last_version": state.get("last_version", 0),
        "uptime_seconds": round(now - state["started_at"], 1) if running else None,
        "connected_seconds": round(now - since, 1) if running and since else None,
        "connections": state.get("connections", 0),
        "pending": pending,
        "sent": state.get("sent", 0),
        "error": state.get("error"),
        "failed": state.get("failed", []),
        "progress": state.get("progress", {}),
    }


def _duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


@app.command()
@handle_errors
def disconnect(
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for it.")] = 15,
    json: JsonOpt = False,
) -> None:
    """Stop the sync daemon (SIGTERM: it closes the session and keeps the queue).

    Example: mangahub sync disconnect
    """
    pid = daemon_files.running_pid()
    if pid is None:
        if json:
            print_json({"stopped": False, "running": False})
        else:
            console.print("the sync daemon is not running")
        return
    stop_daemon(pid, timeout)
    if json:
        print_json({"stopped": True, "pid": pid})
    else:
        console.print(f"[green]✓[/green] sync daemon {pid} stopped")


def stop_daemon(pid: int, timeout: float = 15) -> None:
    """SIGTERM the daemon ``pid`` and wait until it has let go of its lock."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while daemon_files.running_pid() == pid and time.monotonic() < deadline:
        time.sleep(0.1)
    if daemon_files.running_pid() == pid:
        raise CliError(f"the sync daemon (pid {pid}) did not stop within {timeout:g} s")


def stop_daemon_of(server: str) -> int | None:
    """Stop the daemon if it syncs with ``server``; its pid, or None if none did."""
    pid = daemon_files.running_pid()
    if pid is None or daemon_files.read_state().get("server") != server:
        return None
    stop_daemon(pid)
    return pid
