"""A small asyncio client for the TCP progress-sync protocol.

::

    async with ProgressClient("127.0.0.1", 8081, token, device="laptop") as client:
        progress = await client.update(manga_id=1, chapter=12.5)   # returns after the ack
        push = await client.next_progress()                        # another device's write

The client keeps one connection open in the background. When it drops, it
reconnects with exponential backoff (with jitter), authenticates again, asks for
``sync`` from the highest version it has seen, and re-sends the updates that were
never acknowledged (a re-sent update is harmless: the last write wins). Awaiting
:meth:`ProgressClient.update` therefore spans reconnects; it fails only on a
definitive error from the server (``bad_request``, ``not_found`` …), on
``unauthorized`` at (re)connect, on :meth:`close` or on its own timeout.

A session lasts as long as the token that opened it (``auth_ok`` says how many
seconds are left). With a token *source* (a coroutine function) the client renews
the session in place at :func:`~mangahub.security.tokens.renew_after` those
seconds, and again after each renewal; the session id stays the same. With a
plain string it cannot renew: the server ends the session when the token expires
and the client gives up with ``unauthorized`` (the token is no good for a
reconnect either). If a renewal fails and the session ends anyway, a client with
a token source reconnects with a fresh token and resyncs, as after any drop.

Every ``progress`` message, live push or sync catch-up alike, lands in one queue
(:meth:`next_progress`); apply a message only when its ``version`` is higher than
the one you hold for that manga, and every device converges.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeGuard

import orjson

from mangahub.ratelimit import TokenBucket
from mangahub.security.tokens import RENEW_FLOOR, renew_after
from mangahub.tcp.protocol import (
    MAX_LINE,
    LineBuffer,
    MessageId,
    encode,
)

log = logging.getLogger(__name__)

TokenSource = str | Callable[[], Awaitable[str]]
"""A fixed access token, or a coroutine function returning a currently valid one
(called at every connect and renewal)."""


class ProgressSyncError(Exception):
    """An error message from the server: ``code`` is SPEC's closed set."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


class ConnectionClosed(Exception):
    """The client was closed (or the connection failed and reconnecting is off)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnect attempts: ``initial`` doubling up to ``maximum``, ±jitter."""

    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * 2.0 ** min(max(0, attempt), 30))
        return base * (1 + random.uniform(-self.jitter, self.jitter))


class ProgressClient:
    """Connect, authenticate, send updates awaiting acks, receive pushes, reconnect."""

    def __init__(
        self,
        host: str,
        port: int,
        token: TokenSource,
        *,
        device: str | None = None,
        since_version: int = 0,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        ping_interval: float = 30.0,
        max_queue: int = 10_000,
        rate: float = 45.0,
        burst: int = 90,
    ) -> None:
        self.host = host
        self.port = port
        self.device = device
        self.last_version = since_version
        """Highest progress version seen (acks and pushes); ``sync`` resumes from it."""
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.session_id: str | None = None
        self.user_id: str | None = None
        self.connections = 0
        """How many times a session was established (1 + reconnects)."""
        self.expires_in: int | None = None
        """Seconds the session had left at its last ``auth_ok`` (None: no expiry)."""
        self.renewals = 0
        """How many times a session was renewed in place."""
        self._token = token
        self._ids = itertools.count(1)
        self._progress: asyncio.Queue[dict[str, Any]] = asyncio.Queue(max_queue)
        self._unacked: dict[MessageId, tuple[bytes, asyncio.Future[dict[str, Any]]]] = {}
        self._waiters: dict[str, list[asyncio.Future[Any]]] = {
            "pong": [],
            "sync_done": [],
            "auth_ok": [],
        }
        self._sync_rows: list[dict[str, Any]] | None = None
        self._writer: asyncio.StreamWriter | None = None
        # Lines wait here and leave paced a little under the server's 50/s (burst 100),
        # so a busy client is slowed down rather than answered with rate_limited.
        self._outgoing: deque[bytes] = deque()
        self._has_outgoing = asyncio.Event()
        self._rate = (rate, burst)
        self._ready = asyncio.Event()
        self._first: asyncio.Future[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        self._fatal: BaseException | None = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- public API ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the first session; raises on bad token or when the server is unreachable."""
        if self._runner is not None:
            return
        self._first = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(), name="progress-client")
        await self._first

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def update(
        self,
        manga_id: int,
        chapter: float,
        status: str | None = None,
        *,
        volume: int | None = None,
        message_id: MessageId | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send a ``progress_update``; return the stored entry from its ``ack``. Without
        ``status`` the entry keeps its own (a series not listed is added as reading)."""
        message_id = message_id if message_id is not None else f"c{next(self._ids)}"
        data: dict[str, Any] = {"manga_id": manga_id, "chapter": chapter}
        if status is not None:
            data["status"] = status
        if volume is not None:
            data["volume"] = volume
        line = encode({"type": "progress_update", "id": message_id, "data": data})
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._check_open()
        if message_id in self._unacked:
            raise ValueError(f"message id {message_id!r} is already awaiting its ack")
        self._unacked[message_id] = (line, future)
        if self._ready.is_set():
            self._send(line)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        finally:
            if self._unacked.get(message_id, (None, None))[1] is future:
                del self._unacked[message_id]

    async def sync(self, since_version: int | None = None) -> list[dict[str, Any]]:
        """Ask for rows changed since ``since_version`` (default: all); return the
        ``progress`` data received until ``sync_done`` (live pushes arriving meanwhile
        included). They are queued for :meth:`next_progress` as well."""
        await self._wait_ready()
        rows: list[dict[str, Any]] = []
        self._sync_rows = rows
        try:
            await self._request({"type": "sync", "since_version": since_version or 0}, "sync_done")
        finally:
            self._sync_rows = None
        return rows

    async def ping(self) -> str:
        """Round trip; returns the server's time."""
        await self._wait_ready()
        reply = await self._request({"type": "ping"}, "pong")
        return str(reply.get("server_time", ""))

    async def next_progress(self, timeout: float | None = None) -> dict[str, Any]:
        """The next ``progress`` data (a push from another device or a sync row)."""
        async with asyncio.timeout(timeout):
            return await self._progress.get()

    def progress_nowait(self) -> list[dict[str, Any]]:
        """Every progress message queued so far."""
        items = []
        while not self._progress.empty():
            items.append(self._progress.get_nowait())
        return items

    async def close(self) -> None:
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        await self._drop_connection()
        self._fail_all(ConnectionClosed("client closed"))

    # -- connection management ---------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            try:
                reader, writer = await self._open()
            except ProgressSyncError as exc:  # the server refused the token
                self._give_up(exc)
                return
            except Exception as exc:  # unreachable, reset, garbled reply: try again later
                if not self.reconnect or self._first is not None and not self._first.done():
                    self._give_up(exc)
                    return
                delay = self.backoff.delay(attempt)
                attempt += 1
                log.info("progress client: connect failed (%r); retry in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            started = time.monotonic()
            try:
                await self._serve(reader, writer)
            except ProgressSyncError as exc:
                # Mid-session, unauthorized means the token expired before a renewal
                # could land. Only a token source can supply one fit to reconnect with.
                if exc.code == "unauthorized" and isinstance(self._token, str):
                    self._give_up(exc)
                    return
                log.info("progress client: server ended the session (%s)", exc)
            except Exception as exc:
                log.info("progress client: connection lost (%r)", exc)
            finally:
                await self._drop_connection()
            if not self.reconnect:
                self._give_up(ConnectionClosed("connection lost"))
                return
            # A session that lasted a while resets the backoff; one dropped at once does not.
            if time.monotonic() - started > self.backoff.maximum:
                attempt = 0
            delay = self.backoff.delay(attempt)
            attempt += 1
            await asyncio.sleep(delay)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        token = self._token if isinstance(self._token, str) else await self._token()
        async with asyncio.timeout(self.connect_timeout):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                writer.write(self._auth_line(token))
                line = await reader.readuntil(b"\n")
            except BaseException:
                writer.close()
                raise
        reply = _decode(line)
        if reply.get("type") == "error":
            writer.close()
            raise _error(reply)
        if reply.get("type") != "auth_ok":
            writer.close()
            raise ConnectionClosed(f"unexpected reply to auth: {reply!r}")
        self.session_id = str(reply.get("session_id"))
        self.user_id = str(reply.get("user_id"))
        self.expires_in = _expires_in(reply)
        return reader, writer

    def _auth_line(self, token: str) -> bytes:
        auth: dict[str, Any] = {"type": "auth", "token": token}
        if self.device is not None:
            auth["device"] = self.device
        return encode(auth)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.connections += 1
        resume = self.connections > 1
        # Catch up on what happened while away, then replay what was never acked.
        self._outgoing.clear()
        if resume:
            # Its sync_done must not be taken as the answer to a caller's sync().
            placeholder: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            placeholder.add_done_callback(_consume)
            self._waiters["sync_done"].append(placeholder)
            self._send(encode({"type": "sync", "since_version": self.last_version}))
        for line, _future in list(self._unacked.values()):
            self._send(line)
        self._ready.set()
        if self._first is not None and not self._first.done():
            self._first.set_result(None)
        helpers = [
            asyncio.create_task(self._ping_loop()),
            asyncio.create_task(self._send_loop(writer)),
        ]
        if self.expires_in is not None and not isinstance(self._token, str):
            helpers.append(asyncio.create_task(self._renew_loop(self._token, self.expires_in)))
        lines = LineBuffer(max(MAX_LINE, 1 << 20))
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionClosed("server closed the connection")
                for raw in lines.feed(data):
                    if raw.strip():
                        self._dispatch(_decode(raw))
        finally:
            self._ready.clear()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            self._send(encode({"type": "ping"}))

    async def _renew_loop(self, source: Callable[[], Awaitable[str]], expires_in: int) -> None:
        """Renew the session in place before its token runs out, and again after each
        renewal. A failed attempt is retried halfway to the deadline; past it, the
        server ends the session and :meth:`_run` reconnects."""
        deadline = time.monotonic() + expires_in
        delay = renew_after(expires_in)
        while True:
            await asyncio.sleep(max(RENEW_FLOOR, delay))
            try:
                token = await source()
                async with asyncio.timeout(self.connect_timeout):
                    reply = await self._request_line(self._auth_line(token), "auth_ok")
            except Exception as exc:  # refused, token source failed, no answer
                left = deadline - time.monotonic()
                log.warning("progress client: renewal failed (%s); %.0f s left", exc, left)
                if left <= RENEW_FLOOR:
                    return
                delay = left / 2
                continue
            renewed = _expires_in(reply)
            self.expires_in = renewed
            self.renewals += 1
            if renewed is None:
                return  # the new token does not expire
            deadline = time.monotonic() + renewed
            delay = renew_after(renewed)

    async def _send_loop(self, writer: asyncio.StreamWriter) -> None:
        bucket = TokenBucket(self._rate[0], self._rate[1], time.monotonic)
        while True:
            while not self._outgoing:
                self._has_outgoing.clear()
                await self._has_outgoing.wait()
            while not bucket.take():
                await asyncio.sleep(bucket.retry_after())
            writer.write(self._outgoing.popleft())
            await writer.drain()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "progress":
            data = message.get("data")
            if isinstance(data, dict):
                self._seen(data)
                if self._sync_rows is not None:
                    self._sync_rows.append(data)
                if self._progress.full():
                    self._progress.get_nowait()  # the consumer fell behind: keep the newest
                self._progress.put_nowait(data)
        elif kind == "ack":
            message_id = message.get("id")
            entry = self._unacked.pop(message_id, None) if _is_id(message_id) else None
            progress = message.get("progress")
            if isinstance(progress, dict):
                self._seen(progress)
            if entry is not None and not entry[1].done():
                entry[1].set_result(progress if isinstance(progress, dict) else {})
        elif kind in self._waiters:
            waiters = self._waiters[kind]
            if waiters:
                future = waiters.pop(0)
                if not future.done():
                    future.set_result(message)
        elif kind == "error":
            self._on_error(message)

    def _on_error(self, message: dict[str, Any]) -> None:
        error = _error(message)
        message_id = message.get("id")
        if _is_id(message_id) and message_id in self._unacked:
            # The server answered this update: it failed, and says why. (Re-sending is
            # only for updates that got no answer at all.)
            _line, future = self._unacked.pop(message_id)
            if not future.done():
                future.set_exception(error)
            return
        if error.code in ("unauthorized", "forbidden") and self._waiters["auth_ok"]:
            # A refused renewal: the session keeps its token. (Should it be the
            # expiry crossing the renewal instead, the server closes next.)
            future = self._waiters["auth_ok"].pop(0)
            if not future.done():
                future.set_exception(error)
            return
        if error.code in ("unauthorized", "unavailable"):
            raise error  # the server closes after these
        # An error without an id answers the oldest sync or ping still waiting.
        for kind in ("sync_done", "pong"):
            if self._waiters[kind]:
                future = self._waiters[kind].pop(0)
                if not future.done():
                    future.set_exception(error)
                return
        log.warning("progress client: server error %s", error)

    def _seen(self, progress: dict[str, Any]) -> None:
        version = progress.get("version")
        if isinstance(version, int) and version > self.last_version:
            self.last_version = version

    async def _request(self, message: dict[str, Any], reply: str) -> dict[str, Any]:
        return await self._request_line(encode(message), reply)

    async def _request_line(self, line: bytes, reply: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[reply].append(future)
        self._send(line)
        try:
            return await future
        finally:
            with contextlib.suppress(ValueError):
                self._waiters[reply].remove(future)

    def _send(self, line: bytes) -> None:
        self._outgoing.append(line)
        self._has_outgoing.set()

    async def _wait_ready(self) -> None:
        self._check_open()
        await self._ready.wait()

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosed("client closed")
        if self._fatal is not None:
            raise self._fatal

    async def _drop_connection(self) -> None:
        writer, self._writer = self._writer, None
        self._ready.clear()
        # Requests waiting for a reply on that connection will not get one.
        for kind in self._waiters:
            for future in self._waiters[kind]:
                if not future.done():
                    future.set_exception(ConnectionClosed("connection lost"))
            self._waiters[kind].clear()
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _give_up(self, exc: BaseException) -> None:
        self._fatal = exc
        if self._first is not None and not self._first.done():
            self._first.set_exception(exc)
        self._fail_all(exc)

    def _fail_all(self, exc: BaseException) -> None:
        for _line, future in self._unacked.values():
            if not future.done():
                future.set_exception(exc)
        self._unacked.clear()
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(exc)
            waiters.clear()


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _is_id(value: Any) -> TypeGuard[MessageId]:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _decode(line: bytes) -> dict[str, Any]:
    message = orjson.loads(line)
    if not isinstance(message, dict):
        raise ValueError("server sent a non-object line")
    return message


def _expires_in(reply: dict[str, Any]) -> int | None:
    value = reply.get("expires_in")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error(message: dict[str, Any]) -> ProgressSyncError:
    return ProgressSyncError(
        str(message.get("code", "internal")),
        str(message.get("message", "")),
        message.get("details"),
    )
