"""``mangahub progress update|show``.

Where an update goes: while the sync daemon runs for this server, through it (queued
on disk, sent over TCP, acknowledged), so updates keep their order with the ones
queued while offline; otherwise straight over HTTP. When the server cannot be
reached, the update is queued on disk and sent, in order, by the daemon once
connected (``mangahub sync connect``).
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from mangahub.cli import daemon_files
from mangahub.cli.api import Unreachable
from mangahub.cli.common import JsonOpt, ServerOpt, api
from mangahub.cli.library import progress_text
from mangahub.cli.outbox import Outbox, QueuedUpdate
from mangahub.cli.output import (
    EXIT_BAD_INPUT,
    EXIT_BY_CODE,
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
from mangahub.domain.enums import ReadingStatus

app = typer.Typer(help="Your reading progress.", no_args_is_help=True)

MAX_MANGA_ID = 2**31 - 1
"""Ids are 32-bit on the server; a larger one could not even be queued on disk."""


@app.command()
@handle_errors
def update(
    manga_id: Annotated[int, typer.Argument(help="Manga id.", min=1, max=MAX_MANGA_ID)],
    chapter: Annotated[float, typer.Argument(help="Chapter reached (5.5 is fine).", min=0)],
    status: Annotated[
        ReadingStatus | None,
        typer.Option(
            "--status", case_sensitive=False, help="Reading status (default: keep the entry's)."
        ),
    ] = None,
    volume: Annotated[int | None, typer.Option("--volume", min=0, help="Volume reached.")] = None,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for the daemon's ack.")
    ] = 10,
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """Record the chapter you reached (pushed to your other devices at once). A series
    not in your library is added as reading; otherwise its status stays unless given.

    Examples:
      mangahub progress update 42 12.5
      mangahub progress update 42 120 --status completed --volume 12
    """
    if not math.isfinite(chapter):
        raise CliError(f"chapter must be a finite number, not {chapter}", EXIT_BAD_INPUT)
    write = _Write(manga_id, chapter, None if status is None else status.value, volume)
    with api(server) as client:
        client.credentials()  # must be logged in, online or not
        state = daemon_files.read_state()
        if daemon_files.running_pid() is not None and state.get("server") == client.server:
            _through_daemon(client.server, write, wait, json)
            return
        waiting = _pending(client.server)
        if waiting:
            # Sent now, it would be overwritten once the older ones go out.
            queued = _queue(client.server, write)
            _report_queued(queued, client.server, f"{waiting} older update(s) go first", json)
            return
        try:
            progress = client.call("PUT", "/api/users/progress", json=write.body(), auth=True)
        except Unreachable as exc:
            queued = _queue(client.server, write)
            _report_queued(queued, client.server, exc.message, json)
            return
    _report(progress, json)


@dataclass(frozen=True)
class _Write:
    manga_id: int
    chapter: float
    status: str | None
    volume: int | None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"manga_id": self.manga_id, "chapter": self.chapter}
        if self.status is not None:
            body["status"] = self.status
        if self.volume is not None:
            body["volume"] = self.volume
        return body


def _queue(server: str, write: _Write) -> tuple[QueuedUpdate, int]:
    outbox = Outbox()
    try:
        item = outbox.put(server, write.manga_id, write.chapter, write.status, write.volume)
        return item, outbox.count(server)
    finally:
        outbox.close()


def _pending(server: str) -> int:
    outbox = Outbox()
    try:
        return outbox.count(server)
    finally:
        outbox.close()


def _through_daemon(server: str, write: _Write, wait: float, json: bool) -> None:
    queued = _queue(server, write)
    pid = daemon_files.running_pid()
    if pid is not None:
        os.kill(pid, signal.SIGUSR1)  # look at the queue now
    message_id = queued[0].message_id
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        state = daemon_files.read_state()
        acked = state.get("acked", {})
        if message_id in acked:
            _report(acked[message_id], json)
            return
        refused = _refusal(state, message_id)
        if refused is not None:
            # The server answered: this update will never go through (the daemon has
            # dropped it from the queue), so saying "queued" would be false.
            code, message = refused
            raise CliError(
                f"update refused by {server}: {message}", EXIT_BY_CODE.get(code, EXIT_ERROR)
            )
        time.sleep(0.05)
    _report_queued(queued, server, "no acknowledgement yet", json)


def _refusal(state: dict[str, Any], message_id: str) -> tuple[str, str] | None:
    """``(code, message)`` when the daemon recorded the server refusing ``message_id``."""
    for failed in state.get("failed", []):
        if isinstance(failed, dict) and failed.get("message_id") == message_id:
            return str(failed.get("code")), str(failed.get("message"))
    return None


def _report_queued(queued: tuple[QueuedUpdate, int], server: str, why: str, json: bool) -> None:
    item, pending = queued
    if json:
        print_json(
            {
                "queued": True,
                "message_id": item.message_id,
                "manga_id": item.manga_id,
                "chapter": item.chapter,
                "status": item.status or None,
                "volume": item.volume,
                "pending": pending,
            }
        )
    daemon = daemon_files.running_pid() is not None
    hint = "the sync daemon sends it" if daemon else "`mangahub sync connect` sends it"
    info(f"[yellow]queued[/yellow]: {why}; {pending} update(s) waiting for {server} — {hint}")


def _report(progress: dict[str, Any], json: bool) -> None:
    if json:
        print_json(progress)
    else:
        title = progress.get("manga", {}).get("title")
        name = f" {escape(title)}" if title else ""
        console.print(
            f"[green]✓[/green] #{progress['manga_id']}{name}: chapter {progress['chapter']:g} "
            f"({progress['status']}, version {progress['version']})"
        )


@app.command()
@handle_errors
def show(
    manga_id: Annotated[
        int | None, typer.Argument(help="Manga id (omit for all your progress).", min=1)
    ] = None,
    server: ServerOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show your progress on one series, or on all of them.

    Examples:
      mangahub progress show 42
      mangahub progress show --json
    """
    with api(server) as client:
        if manga_id is not None:
            progress = client.call("GET", f"/api/users/progress/{manga_id}", auth=True)
        else:
            progress = client.call("GET", "/api/users/progress", auth=True)
    if json:
        print_json(progress)
        return
    if manga_id is not None:
        fields(
            f"Progress on #{manga_id} {escape(progress['manga']['title'])}",
            [
                ("progress", progress_text(progress)),
                *(
                    (k, progress.get(k))
                    for k in ("volume", "status", "score", "version", "device", "updated_at")
                ),
            ],
        )
        return
    rows = progress["data"] if isinstance(progress, dict) else progress
    if not rows:
        console.print("no progress recorded yet")
        return
    table(
        "Reading progress",
        ["id", "title", "progress", "status", "version", "device", "updated"],
        (
            (
                p["manga_id"],
                p["manga"]["title"],
                progress_text(p),
                p["status"],
                p["version"],
                p.get("device"),
                p.get("updated_at"),
            )
            for p in rows
        ),
    )
