"""The progress-sync daemon behind ``mangahub sync connect``.

Run detached as ``python -m mangahub.cli.syncd --server URL --tcp HOST:PORT``. It keeps
one TCP sync session open with :class:`~mangahub.tcp.client.ProgressClient` (which
reconnects with backoff and resumes by ``sync`` from the last version seen), sends the
queued updates from the :class:`~mangahub.cli.outbox.Outbox` oldest first — each
deleted only after the server's ack — and records what it knows in ``syncd.json``
for ``sync status``. SIGTERM or SIGINT stops it cleanly; SIGUSR1 says "the queue
has something new".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from typing import Any, Final

from mangahub.cli import daemon_files
from mangahub.cli.api import Api
from mangahub.cli.outbox import Outbox
from mangahub.cli.output import EXIT_AUTH, CliError
from mangahub.cli.paths import parse_hostport
from mangahub.tcp.client import Backoff, ConnectionClosed, ProgressClient, ProgressSyncError

log = logging.getLogger("mangahub.syncd")

POLL_INTERVAL: Final = 0.5
"""How often the queue is looked at when no SIGUSR1 came."""
KEEP_PROGRESS: Final = 500
KEEP_ACKED: Final = 200
KEEP_FAILED: Final = 50
RETRYABLE: Final = frozenset({"rate_limited", "unavailable", "internal"})


class Daemon:
    """One sync session, the queue drainer and the state file."""

    def __init__(self, server: str, tcp: tuple[str, int], device: str) -> None:
        self.server = server
        self.tcp = tcp
        self.device = device
        self.api = Api(server)
        self.outbox = Outbox()
        self.stop = asyncio.Event()
        self.wake = asyncio.Event()
        previous = daemon_files.read_state()
        same = previous.get("server") == server
        self.state: dict[str, Any] = {
            "pid": os.getpid(),
            "server": server,
            "tcp": f"{tcp[0]}:{tcp[1]}",
            "device": device,
            "status": "connecting",
            "session_id": None,
            "user_id": None,
            "started_at": time.time(),
            "connected_since": None,
            # Resume from what an earlier run of the daemon had seen.
            "last_version": int(previous.get("last_version", 0)) if same else 0,
            "sent": 0,
            "connections": 0,
            "error": None,
            "progress": previous.get("progress", {}) if same else {},
            "acked": {},
            "failed": [],
        }
        self.client: ProgressClient | None = None

    # -- tokens -------------------------------------------------------------------------------

    async def token(self) -> str:
        try:
            return await asyncio.to_thread(self.api.access_token)
        except CliError as exc:
            if exc.exit_code == EXIT_AUTH:
                self.fail(exc.message)
            raise

    def fail(self, message: str) -> None:
        log.error("%s", message)
        self.state["error"] = message
        self.state["status"] = "error"
        self.stop.set()

    # -- main loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self.wake.set)
        writer = asyncio.create_task(self._write_state_loop())
        supervisor = asyncio.create_task(self._supervise())
        await self.stop.wait()
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
        if self.client is not None:
            await self.client.close()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        if self.state["status"] != "error":
            self.state["status"] = "stopped"
        self.state["session_id"] = None
        self._save()
        self.outbox.close()
        self.api.close()

    async def _supervise(self) -> None:
        backoff = Backoff(initial=0.5, maximum=15.0)
        attempt = 0
        while not self.stop.is_set():
            client = ProgressClient(
                self.tcp[0],
                self.tcp[1],
                self.token,
                device=self.device,
                since_version=int(self.state["last_version"]),
                backoff=backoff,
            )
            self.client = client
            try:
                await client.connect()
                await client.sync(int(self.state["last_version"]))
            except Exception as exc:
                await client.close()
                if self.stop.is_set():
                    return
                if isinstance(exc, ProgressSyncError) and exc.code == "unauthorized":
                    # The server refused a token we believed in: one forced refresh, then retry.
                    with contextlib.suppress(CliError):
                        await asyncio.to_thread(self.api.access_token, force=True)
                self._disconnected(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(backoff.delay(attempt))
                attempt += 1
                continue
            attempt = 0
            tasks = [
                asyncio.create_task(self._consume(client)),
                asyncio.create_task(self._drain(client)),
                asyncio.create_task(self._watch(client)),
            ]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    self._disconnected(repr(task.exception()))
            await client.close()
            await asyncio.sleep(backoff.delay(0))  # never a tight reconnect loop

    def _disconnected(self, why: str) -> None:
        log.info("sync session lost or not established: %s", why)
        self.state.update(status="disconnected", session_id=None, connected_since=None, error=why)

    async def _watch(self, client: ProgressClient) -> None:
        """Mirror the session's state; a ping failing other than by timeout means the
        client gave up (e.g. the token was refused), so the supervisor starts over."""
        loop = asyncio.get_running_loop()
        next_ping = loop.time()
        while True:
            self._mirror(client)
            if loop.time() >= next_ping:
                # A drop during the ping is the client's to heal (it reconnects);
                # ProgressSyncError (token refused) means it gave up: that propagates.
                with contextlib.suppress(TimeoutError, ConnectionClosed):
                    async with asyncio.timeout(10 if client.connected else 1):
                        await client.ping()
                next_ping = loop.time() + 5
            await asyncio.sleep(0.25)

    def _mirror(self, client: ProgressClient) -> None:
        if client.connected:
            if self.state["session_id"] != client.session_id:
                self.state.update(connected_since=time.time(), error=None)
            self.state.update(
                status="connected",
                session_id=client.session_id,
                user_id=client.user_id,
                connections=client.connections,
            )
        else:
            self.state.update(status="reconnecting", session_id=None, connected_since=None)
        self.state["last_version"] = max(int(self.state["last_version"]), client.last_version)

    async def _consume(self, client: ProgressClient) -> None:
        """Every progress message (pushes from other devices, sync catch-up)."""
        while True:
            data = await client.next_progress()
            self._record(data)

    def _record(self, data: dict[str, Any]) -> None:
        progress: dict[str, Any] = self.state["progress"]
        key = str(data.get("manga_id"))
        held = progress.get(key)
        if held is None or int(data.get("version", 0)) >= int(held.get("version", 0)):
            progress.pop(key, None)
            progress[key] = data
            while len(progress) > KEEP_PROGRESS:
                progress.pop(next(iter(progress)))
        version = data.get("version")
        if isinstance(version, int) and version > int(self.state["last_version"]):
            self.state["last_version"] = version

    async def _drain(self, client: ProgressClient) -> None:
        """Send queued updates, oldest first, one at a time; delete each after its ack."""
        while True:
            item = self.outbox.oldest(self.server)
            if item is None:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_INTERVAL):
                        await self.wake.wait()
                continue
            try:
                progress = await client.update(
                    item.manga_id,
                    item.chapter,
                    item.status or None,
                    volume=item.volume,
                    message_id=item.message_id,
                )
            except ProgressSyncError as exc:
                if exc.code == "unauthorized":
                    raise
                if exc.code in RETRYABLE:
                    await asyncio.sleep(1)
                    continue
                # A definitive refusal (unknown manga, bad chapter): it will never succeed.
                log.warning("queued update %s refused: %s", item.message_id, exc)
                self.outbox.remove(item.message_id)
                failed: list[Any] = self.state["failed"]
                failed.append(
                    {
                        "message_id": item.message_id,
                        "code": exc.code,
                        "message": exc.message,
                        "manga_id": item.manga_id,
                    }
                )
                del failed[:-KEEP_FAILED]
                self._save()  # `progress update` is waiting for the answer
                continue
            except ConnectionClosed:
                raise
            self.outbox.remove(item.message_id)
            self._record(progress)
            acked: dict[str, Any] = self.state["acked"]
            acked[item.message_id] = progress
            while len(acked) > KEEP_ACKED:
                acked.pop(next(iter(acked)))
            self.state["sent"] += 1
            self._mirror(client)
            self._save()

    async def _write_state_loop(self) -> None:
        while True:
            self._save()
            await asyncio.sleep(0.5)

    def _save(self) -> None:
        self.state["pending"] = self.outbox.count(self.server)
        daemon_files.write_state(self.state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mangahub-syncd", description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--tcp", required=True)
    parser.add_argument("--device", default=socket.gethostname())
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Once the pid file exists, `progress update` may send SIGUSR1 ("queue has news");
    # until run() listens for it, its default action would kill the daemon.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    if not daemon_files.claim_pid():
        log.error("another sync daemon is running (pid %s)", daemon_files.running_pid())
        return 1
    try:
        tcp = parse_hostport(args.tcp, "127.0.0.1", "TCP")
        daemon = Daemon(args.server, tcp, args.device)
        log.info("sync daemon %d for %s via %s:%d", os.getpid(), args.server, *tcp)
        asyncio.run(daemon.run())
        return 2 if daemon.state["status"] == "error" else 0
    except CliError as exc:  # a bad --tcp, an unreadable queue: one line in the log
        log.error("%s", exc.message)
        return 2
    finally:
        daemon_files.release_pid()


if __name__ == "__main__":
    sys.exit(main())
