"""The TCP progress-sync door (port 8081): an asyncio.Protocol around ServerSession.

Per connection:

- ``data_received`` feeds the sans-I/O :class:`~mangahub.tcp.protocol.ServerSession`;
  one task pulls its events and calls the services. Reading pauses while too many
  complete lines wait to be handled, so a fast sender is slowed, never buffered
  without bound.
- ``progress_update`` goes to the process-wide :class:`ProgressBatcher` (group
  commit). Updates are pipelined (up to ``max_in_flight`` per connection) and an
  ack task answers them in order, each ``ack`` only once its transaction committed.
- The user's bus topic ``progress:<user_id>`` feeds pushes; events carrying this
  session's id as ``origin`` are its own writes (already acked) and are skipped.
  If the bus had to drop events for this subscriber, the connection is closed: the
  client reconnects and catches up with ``sync``, which is always complete.
- A session lasts as long as its token: ``auth_ok`` carries ``expires_in`` and the
  serve loop's deadline includes the token's expiry (wall-clock seconds left turned
  into loop time, so it needs no clock sync). An ``auth`` on the open session with
  a fresh token of the same user moves that deadline (no re-subscribe); when it
  passes, in-flight updates are still acked, then ``unauthorized`` "access token
  expired" and close.
- Every line out goes through a bounded send queue drained by a writer task that
  honours the transport's flow control. Replies wait for room (the client only
  slows itself); a push that finds the queue full drops the connection, so one
  slow reader never delays anybody else.

Shutdown (:meth:`TcpServer.stop`): stop accepting, stop reading, wait for the
in-flight updates to commit and be acked, send ``unavailable`` "server shutting
down", flush and close; whatever is left when the timeout expires is aborted.

Conflict rule: writes are ordered by arrival at the server (one batcher per
process; the database orders processes), each commit takes the next per-user
version, the last write wins, and devices converge by push plus ``sync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from pydantic import ValidationError

from mangahub import metrics
from mangahub.app import Runtime
from mangahub.bus import Subscription
from mangahub.domain.errors import Forbidden, MangaHubError, Unauthorized
from mangahub.domain.schemas import EntryPublic
from mangahub.security.tokens import Principal
from mangahub.tcp.batcher import ProgressBatcher, ProgressWrite
from mangahub.tcp.protocol import (
    MAX_LINE,
    RATE_BURST,
    RATE_PER_SECOND,
    AuthRequest,
    ClientEvent,
    MessageId,
    PingRequest,
    ProgressUpdate,
    RenewRequest,
    ServerSession,
    SessionState,
    SyncRequest,
    encode,
)

log = logging.getLogger(__name__)

_EVENT_TYPES: dict[type, str] = {
    AuthRequest: "auth",
    RenewRequest: "auth",
    ProgressUpdate: "progress_update",
    SyncRequest: "sync",
    PingRequest: "ping",
}


@dataclass(frozen=True, slots=True)
class TcpConfig:
    """Limits of the TCP door; the defaults are SPEC's."""

    auth_timeout: float = 10.0
    idle_timeout: float = 90.0
    max_line: int = MAX_LINE
    rate: float = RATE_PER_SECOND
    burst: int = RATE_BURST
    send_queue: int = 1024
    """Lines waiting for the socket; a push finding it full drops the connection."""
    max_in_flight: int = 256
    """Updates of one connection submitted but not yet acked."""
    max_pending_lines: int = 512
    """Complete lines received but not handled; reading pauses beyond this."""
    max_batch: int = 256
    close_timeout: float = 5.0
    max_connections: int = 10_000
    """Open connections; one more is told ``unavailable`` and closed (see _Refusal)."""


def progress_json(progress: EntryPublic) -> dict[str, Any]:
    return progress.model_dump(mode="json")


def _push_data(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The bus carries the service's event; serialize it like every other progress
    object (so timestamps look the same on every backend)."""
    try:
        return progress_json(EntryPublic.model_validate(data))
    except ValidationError:
        return data


_FULL = encode(
    {"type": "error", "code": "unavailable", "message": "server is at its connection limit"}
)


class _Outbox:
    """Bounded FIFO of encoded lines between the connection and its writer task."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._low = max(1, limit // 2)
        self._lines: deque[bytes] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.closed = False

    def __len__(self) -> int:
        return len(self._lines)

    def offer(self, lines: list[bytes]) -> bool:
        """Queue without waiting; False when that would exceed the limit."""
        if self.closed or not lines:
            return True
        if len(self._lines) + len(lines) > self.limit:
            return False
        self._lines.extend(lines)
        self._readable.set()
        return True

    async def put(self, lines: list[bytes]) -> None:
        """Queue once the backlog is under half the limit (replies: the sender waits)."""
        while lines and not self.closed and len(self._lines) >= self._low:
            self._writable.clear()
            await self._writable.wait()
        if lines and not self.closed:
            self._lines.extend(lines)
            self._readable.set()

    async def take(self) -> list[bytes]:
        """Everything queued; waits for something; [] once closed and empty."""
        while not self._lines:
            if self.closed:
                return []
            self._readable.clear()
            await self._readable.wait()
        lines = list(self._lines)
        self._lines.clear()
        self._writable.set()
        return lines

    def close(self, *, discard: bool = False) -> None:
        self.closed = True
        if discard:
            self._lines.clear()
        self._readable.set()
        self._writable.set()


class _Refusal(asyncio.Protocol):
    """A connection beyond ``max_connections``: one ``unavailable`` line, then closed.

    The line is followed by a FIN and the client's input is read and discarded until it
    closes (or ``linger`` passes): closing a socket with unread input resets it, and the
    client could lose the line that says why."""

    def __init__(self, line: bytes, linger: float) -> None:
        self._line = line
        self._linger = linger
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)
        stream.write(self._line)
        if stream.can_write_eof():
            stream.write_eof()
        self._timer = asyncio.get_running_loop().call_later(self._linger, stream.abort)

    def data_received(self, data: bytes) -> None:
        pass  # an auth line, most likely: there is no room to serve it

    def eof_received(self) -> bool:
        return False  # the client has read the refusal and closed: close our side

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _Connection(asyncio.Protocol):
    """One client connection: transport callbacks plus the tasks that serve it."""

    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.config = server.config
        self.session_id = uuid.uuid4().hex
        self.session = ServerSession(
            max_line=self.config.max_line, rate=self.config.rate, burst=self.config.burst
        )
        self.outbox = _Outbox(self.config.send_queue)
        self.user_id: uuid.UUID | None = None
        self.task: asyncio.Task[None] | None = None
        self.peer: str = "?"
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._lost = asyncio.Event()
        self._paused = False
        self._stopping = False
        self._aborted = False
        self._last_rx = self._loop.time()
        self._auth_deadline = self._last_rx + self.config.auth_timeout
        self._expires_at: float | None = None  # loop time the session's token runs out
        self._expired = False
        self._pending: asyncio.Queue[tuple[MessageId, asyncio.Future[EntryPublic]]] = asyncio.Queue(
            self.config.max_in_flight
        )
        self._subscription: Subscription | None = None
        self._helpers: list[asyncio.Task[None]] = []

    # -- transport callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
        self.server._connections.add(self)
        self.task = self._loop.create_task(self._run(), name=f"tcp-conn-{self.session_id[:8]}")
        if self.server._closing:  # accepted in the instant the listener was closing
            self.request_stop()

    def data_received(self, data: bytes) -> None:
        self._last_rx = self._loop.time()
        self.session.receive_data(data)
        self._wake.set()
        if self.session.pending_lines > self.config.max_pending_lines and not self._paused:
            self._paused = True
            self._transport_call("pause_reading")

    def eof_received(self) -> bool:
        self.session.receive_eof()
        self._wake.set()
        return True  # keep our half open: replies to the last lines still go out

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost.set()
        self._aborted = self._aborted or not self.outbox.closed
        self.outbox.close(discard=True)
        self._can_write.set()
        self._wake.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- control from the server ---------------------------------------------------------

    def request_stop(self) -> None:
        """Stop reading; finish in-flight updates, say goodbye, close (see _run)."""
        self._stopping = True
        self._transport_call("pause_reading")
        self._wake.set()

    def abort(self, reason: str) -> None:
        """Drop the connection now, unsent lines included."""
        if not self._aborted:
            log.info("tcp %s: dropping connection: %s", self.peer, reason)
        self._aborted = True
        self.outbox.close(discard=True)
        self._wake.set()
        if self._transport is not None:
            self._transport.abort()

    def _transport_call(self, name: str) -> None:
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(RuntimeError):
                getattr(self._transport, name)()

    # -- the connection's life -----------------------------------------------------------

    async def _run(self) -> None:
        writer = asyncio.create_task(self._write_loop())
        ack = asyncio.create_task(self._ack_loop())
        self._helpers += [writer, ack]
        try:
            await self._serve()
            # Orderly end: every update already submitted is committed and acked first.
            await self._pending.join()
            if self._expired:
                self.session.expire()
            elif self._stopping and not self.session.close_expected:
                self.session.send_error("unavailable", "server shutting down", close=True)
            self.session.close()
            await self._flush()
            self.outbox.close()
            try:
                async with asyncio.timeout(self.config.close_timeout):
                    await asyncio.shield(writer)
            except TimeoutError:
                self.abort("peer does not read; closing")
            else:
                await self._close_transport()
        except asyncio.CancelledError:
            self.abort("cancelled")
            raise
        except Exception:
            log.exception("tcp %s: connection failed", self.peer)
            self.abort("internal error")
        finally:
            for task in self._helpers:
                task.cancel()
            await asyncio.gather(*self._helpers, return_exceptions=True)
            if self._subscription is not None:
                await self._subscription.close()
            self.server._connections.discard(self)

    async def _close_transport(self) -> None:
        assert self._transport is not None
        self._transport.close()  # flushes what the transport still holds, then closes
        try:
            async with asyncio.timeout(self.config.close_timeout):
                await self._lost.wait()
        except TimeoutError:
            self._transport.abort()  # the peer does not read: give up on the rest

    async def _serve(self) -> None:
        session = self.session
        while not (self._stopping or self._aborted or self._lost.is_set()):
            if self._token_expired():
                return  # checked before each event: nothing is handled on an expired token
            event = session.next_event()
            await self._flush()
            if event is not None:
                await self._handle(event)
                continue
            if session.close_expected:
                return
            if self._paused:
                self._paused = False
                self._transport_call("resume_reading")
            now = self._loop.time()
            if session.state is SessionState.AUTHENTICATED:
                deadline = self._last_rx + self.config.idle_timeout
                if self._expires_at is not None:
                    deadline = min(deadline, self._expires_at)
            else:
                deadline = self._auth_deadline
            if now >= deadline:
                if self._token_expired():
                    return
                if session.state is SessionState.AUTHENTICATED:
                    log.info("tcp %s: idle for %.0f s; closing", self.peer, now - self._last_rx)
                    session.close()
                else:
                    session.send_error("unauthorized", "no auth message in time", close=True)
                    await self._flush()
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._wake.wait()

    def _token_expired(self) -> bool:
        """True (and noted for _run, which acks what is in flight and then says why it
        closes) once the session's token ran out without renewal."""
        if (
            self.session.state is SessionState.AUTHENTICATED
            and self._expires_at is not None
            and self._loop.time() >= self._expires_at
        ):
            if not self._expired:
                log.info("tcp %s: access token expired; closing", self.peer)
            self._expired = True
        return self._expired

    def _set_expiry(self, principal: Principal) -> int | None:
        """Start the session's token clock; return ``expires_in`` for ``auth_ok``."""
        left = principal.seconds_left()
        if left is None:
            self._expires_at = None
            return None
        self._expires_at = self._loop.time() + left
        return int(left)

    async def _flush(self) -> None:
        """Hand queued replies to the writer, waiting for room (only this client waits)."""
        lines = self.session.data_to_send()
        if lines:
            await self.outbox.put(lines)

    async def _handle(self, event: ClientEvent) -> None:
        metrics.TCP_IN[_EVENT_TYPES.get(type(event), "other")].inc()
        try:
            if isinstance(event, AuthRequest | RenewRequest):
                await self._authenticate(event)
            elif isinstance(event, ProgressUpdate):
                await self._submit(event)
            elif isinstance(event, SyncRequest):
                await self._sync(event)
            elif isinstance(event, PingRequest):
                self.session.send_pong()
        except MangaHubError as exc:
            metrics.TCP_ERRORS.labels(exc.code).inc()
            message_id = event.id if isinstance(event, ProgressUpdate) else None
            self.session.send_error(
                exc.code, exc.message, message_id=message_id, details=exc.details
            )
        except Exception:
            log.exception("tcp %s: failed to handle %s", self.peer, type(event).__name__)
            self.session.send_error("internal", "internal error")
        await self._flush()

    async def _authenticate(self, request: AuthRequest | RenewRequest) -> None:
        if isinstance(request, RenewRequest):
            self._renew(request)
            return
        try:
            principal = self.server.runtime.tokens.verify(request.token)
        except Unauthorized as exc:
            self.session.reject_auth(exc.message)
            return
        self.user_id = principal.user_id
        try:
            # Subscribe before saying auth_ok: everything committed after the client
            # sees auth_ok reaches it, and its sync covers what came before.
            self._subscription = await self.server.runtime.bus.subscribe(
                f"progress:{principal.user_id}"
            )
        except Exception:
            log.exception("tcp %s: cannot subscribe to progress events", self.peer)
            self.session.reject_auth("progress events unavailable; retry later")
            return
        self.session.accept_auth(
            self.session_id, str(principal.user_id), self._set_expiry(principal)
        )
        self._helpers.append(asyncio.create_task(self._push_loop(self._subscription)))
        log.debug("tcp %s: %s authenticated (%s)", self.peer, principal.username, self.session_id)

    def _renew(self, request: RenewRequest) -> None:
        """Same user, same subscription: only the deadline moves. A refusal leaves the
        session on its current token until that one runs out."""
        assert self.user_id is not None
        try:
            principal = self.server.runtime.tokens.verify_renewal(request.token, self.user_id)
        except Unauthorized as exc:
            self.session.reject_renewal("unauthorized", f"renewal refused: {exc.message}")
        except Forbidden as exc:
            self.session.reject_renewal("forbidden", exc.message)
        else:
            self.session.accept_renewal(self._set_expiry(principal))
            log.debug("tcp %s: session %s renewed", self.peer, self.session_id)

    async def _submit(self, update: ProgressUpdate) -> None:
        assert self.user_id is not None
        future = await self.server.batcher.submit(
            ProgressWrite(
                user_id=self.user_id,
                manga_id=update.manga_id,
                chapter=update.chapter,
                status=update.status,
                volume=update.volume,
                device=self.session.device,
                origin=self.session_id,
            )
        )
        await self._pending.put((update.id, future))

    async def _sync(self, request: SyncRequest) -> None:
        assert self.user_id is not None
        # A sync sees every update this connection sent before it.
        await self._pending.join()
        rows = await self.server.runtime.reading_list.changed_since(
            self.user_id, request.since_version
        )
        for row in rows:
            self.session.send_progress(progress_json(row))
            await self._flush()
        self.session.send_sync_done()

    # -- helper tasks ---------------------------------------------------------------------

    async def _ack_loop(self) -> None:
        while True:
            message_id, future = await self._pending.get()
            try:
                progress = await asyncio.shield(future)
            except MangaHubError as exc:
                metrics.TCP_ERRORS.labels(exc.code).inc()
                self.session.send_error(
                    exc.code, exc.message, message_id=message_id, details=exc.details
                )
            except Exception:
                metrics.TCP_ERRORS.labels("internal").inc()
                log.exception("tcp %s: progress update failed", self.peer)
                self.session.send_error("internal", "internal error", message_id=message_id)
            else:
                metrics.TCP_OUT_ACK.inc()
                self.session.send_ack(message_id, progress_json(progress))
            finally:
                self._pending.task_done()
            await self._flush()

    async def _push_loop(self, subscription: Subscription) -> None:
        async for _topic, event in subscription:
            if subscription.dropped:
                # Fell behind, or the bus lost events in an outage: a client resyncs
                # (``sync``) after every reconnect, which brings what it missed.
                self.abort("missed progress events; the client must sync")
                return
            if event.get("type") != "progress" or event.get("origin") == self.session_id:
                continue
            data = event.get("data")
            if not isinstance(data, dict):
                continue
            self.session.send_progress(_push_data(data))
            metrics.TCP_OUT_PUSH.inc()
            if not self.outbox.offer(self.session.data_to_send()):
                self.abort(f"send queue full ({self.outbox.limit} lines); slow reader")
                return

    async def _write_loop(self) -> None:
        assert self._transport is not None
        while True:
            lines = await self.outbox.take()
            if not lines or self._lost.is_set():
                return
            self._transport.write(b"".join(lines))
            await self._can_write.wait()


class TcpServer:
    """The ``tcp`` part of ``mangahub serve``: SPEC "TCP progress sync"."""

    name = "tcp"

    def __init__(
        self, runtime: Runtime, host: str, port: int, config: TcpConfig | None = None
    ) -> None:
        self.runtime = runtime
        self.host = host
        self.port = port
        self.config = config or TcpConfig()
        entries = runtime.reading_list
        self.batcher = ProgressBatcher(
            lambda w: entries.set_progress(
                w.user_id,
                w.manga_id,
                w.chapter,
                volume=w.volume,
                status=w.status,
                device=w.device,
                origin=w.origin,
            ),
            entries.update_many,
            max_batch=self.config.max_batch,
        )
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._closing = False

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("tcp server is not listening")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        await self.batcher.start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        metrics.track("tcp", self)

    def _accept(self) -> asyncio.Protocol:
        # Connections count once connection_made ran, so a burst accepted in one loop
        # iteration may overshoot the limit by that burst; the limit bounds fds, roughly.
        if len(self._connections) < self.config.max_connections:
            return _Connection(self)
        metrics.TCP_ERRORS.labels("unavailable").inc()
        log.debug("tcp: %d connections open; refusing one more", len(self._connections))
        return _Refusal(_FULL, self.config.close_timeout)

    async def stop(self, timeout: float) -> None:
        """Stop accepting, let connections finish their in-flight updates, then close."""
        if self._server is None or self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._server.close()
        connections = list(self._connections)
        for conn in connections:
            conn.request_stop()
        tasks = [c.task for c in connections if c.task is not None]
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
            for conn in connections:
                if conn.task in late:
                    conn.abort("shutdown timeout")
                    conn.task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self.batcher.stop(max(0.1, deadline - loop.time()))
        await self._server.wait_closed()
        metrics.untrack("tcp", self)
