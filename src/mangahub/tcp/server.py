"""The TCP progress-sync door (port 8081): an asyncio.Protocol around ServerSession.

Per connection, one task and no queue of its own:

- ``data_received`` feeds the sans-I/O :class:`~mangahub.tcp.protocol.ServerSession`;
  the connection's task pulls its events and calls the services. Reading pauses while
  too many complete lines wait to be handled, so a fast sender is slowed, never
  buffered without bound.
- ``progress_update`` goes to the process-wide :class:`ProgressBatcher` (group
  commit). Updates are pipelined (up to ``max_in_flight`` per connection); each
  ``ack`` is written by the update's reply once its transaction committed. The
  batcher replies in submission order, so acks leave in order. While the task has
  nothing else to do, ``data_received`` hands updates to the batcher itself (no task
  wake-up per line); when the batcher's queue is full, the update waits and the
  batcher's room callback goes on from it. Anything else (auth, sync, the in-flight
  limit) is left to the task.
- The user's bus topic ``progress:<user_id>`` feeds pushes through a subscription
  whose listener queues the push (no task hop); the line is encoded once per event
  and shared by every receiving connection. Acks and pushes produced in one go (a
  committed batch) are corked: each connection gets one socket write for all of
  its lines at the end of the loop iteration, not one per line. Events
  carrying this session's id as ``origin`` are its own writes (already acked) and are
  skipped. If the bus lost events for this subscriber, the connection is closed: the
  client reconnects and catches up with ``sync``, which is always complete.
- A session lasts as long as its token: ``auth_ok`` carries ``expires_in`` and the
  serve loop's deadline includes the token's expiry (wall-clock seconds left turned
  into loop time, so it needs no clock sync). An ``auth`` on the open session with
  a fresh token of the same user moves that deadline (no re-subscribe); when it
  passes, in-flight updates are still acked, then ``unauthorized`` "access token
  expired" and close.
- Lines go straight to the transport, whose flow control bounds what waits for the
  socket: replies (acks, sync rows) are only produced while the transport is not
  paused (the client only slows itself); a push that finds more than ``send_buffer``
  bytes unsent drops the connection, so one slow reader never delays anybody else
  nor grows the server's memory.

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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from mangahub import metrics
from mangahub.app import Runtime
from mangahub.bus import MISSED, Event, Subscription
from mangahub.domain.errors import Forbidden, MangaHubError, Unauthorized
from mangahub.domain.schemas import EntryPublic
from mangahub.security.tokens import Principal
from mangahub.services.entry_writes import EntryWrite, StoredEntry, progress_write
from mangahub.tcp.batcher import ProgressBatcher
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
    ack_line,
    encode,
    progress_line,
)

log = logging.getLogger(__name__)

# As a module global for the per-message code (see tcp.protocol).
_AUTHENTICATED = SessionState.AUTHENTICATED

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
    send_buffer: int = 1 << 20
    """Bytes waiting for the socket; a push finding more drops the connection."""
    max_in_flight: int = 256
    """Updates of one connection submitted but not yet acked."""
    max_pending_lines: int = 512
    """Complete lines received but not handled; reading pauses beyond this."""
    max_batch: int = 1024
    max_queued: int = 16_384
    """Updates waiting for a transaction; a connection finding the queue full waits
    (and stops reading once its own lines pile up)."""
    """Updates per group-commit transaction: bigger batches share more of its fixed cost."""
    close_timeout: float = 5.0
    max_connections: int = 10_000
    """Open connections; one more is told ``unavailable`` and closed (see _Refusal)."""


def progress_json(progress: EntryPublic) -> dict[str, Any]:
    return progress.model_dump(mode="json")


_FULL = encode(
    {"type": "error", "code": "unavailable", "message": "server is at its connection limit"}
)


class _PushLines:
    """The ``progress`` line of a bus event, encoded once: the bus hands the same event
    object to every subscriber of the topic in a row, so one slot is enough."""

    __slots__ = ("_event", "_line")

    def __init__(self) -> None:
        self._event: Event | None = None
        self._line: bytes | None = None

    def line(self, event: Event) -> bytes | None:
        """The push line, or None for an event that is not a progress entry."""
        if event is not self._event:
            data = event.get("data")
            self._event = event
            if isinstance(data, StoredEntry):  # written in this process: encoded already
                self._line = progress_line(data.encoded)
            elif isinstance(data, dict):
                self._line = encode({"type": "progress", "data": data})
            else:
                self._line = None
        return self._line


class MessageCounts:
    """Messages in and out by type, as plain ints (read by ``metrics`` at scrape time)."""

    __slots__ = ("auth", "progress_update", "sync", "ping", "other", "ack", "progress")

    INBOUND = ("auth", "progress_update", "sync", "ping", "other")

    def __init__(self) -> None:
        self.auth = self.progress_update = self.sync = self.ping = self.other = 0
        self.ack = self.progress = 0

    def received(self, kind: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)

    def items(self) -> Iterator[tuple[tuple[str, str], int]]:
        for kind in self.INBOUND:
            yield ("in", kind), getattr(self, kind)
        yield ("out", "ack"), self.ack
        yield ("out", "progress"), self.progress


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
    """One client connection: transport callbacks plus the one task that serves it."""

    __slots__ = (
        "server",
        "config",
        "session_id",
        "session",
        "user_id",
        "task",
        "peer",
        "_transport",
        "_loop",
        "_waiter",
        "_timer",
        "_write_paused",
        "_lost",
        "_paused",
        "_stopping",
        "_aborted",
        "_last_rx",
        "_auth_deadline",
        "_expires_at",
        "_expired",
        "_in_flight",
        "_subscription",
        "_idle",
        "_held",
        "_room_wait",
        "_waiting_acks",
        "_corked",
        "_counts",
        "_batcher",
    )

    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.config = server.config
        self.session_id = uuid.uuid4().hex
        self.session = ServerSession(
            max_line=self.config.max_line, rate=self.config.rate, burst=self.config.burst
        )
        self.user_id: uuid.UUID | None = None
        self.task: asyncio.Task[None] | None = None
        self.peer: str = "?"
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        # The task sleeps on this future; every callback that may unblock it resolves it.
        self._waiter: asyncio.Future[None] | None = None
        # Wakes the task at (or before) its next deadline; kept across sleeps, since the
        # idle deadline moves with every line received.
        self._timer: asyncio.TimerHandle | None = None
        self._write_paused = False
        self._lost = False
        self._paused = False
        self._stopping = False
        self._aborted = False
        self._last_rx = self._loop.time()
        self._auth_deadline = self._last_rx + self.config.auth_timeout
        self._expires_at: float | None = None  # loop time the session's token runs out
        self._expired = False
        self._in_flight = 0  # updates submitted, not yet acked
        self._subscription: Subscription | None = None
        # True while the task sleeps with nothing to handle: data_received may then
        # hand progress updates to the batcher itself.
        self._idle = False
        self._held: ClientEvent | None = None  # taken by data_received, left to the task
        # The held update waits for room in the batcher's queue (its callback is set).
        self._room_wait = False
        self._waiting_acks = False  # the task sleeps until an ack makes room / drains
        self._corked: list[bytes] = []  # lines waiting for the end of the iteration
        self._counts = server.counts
        self._batcher = server.batcher

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
        session = self.session
        session.receive_data(data)
        # Only while the task sleeps: what it was woken for comes first, and lines
        # after it wait for it (arrival order).
        if self._idle and session.state is _AUTHENTICATED:
            if not self._room_wait:
                self._take_updates()
            if self._handled_inline():
                self._pause_if_flooded()
                return  # the task sleeps on
        self._wake()
        self._pause_if_flooded()

    def _take_updates(self) -> None:
        """Hand the received progress updates to the batcher without waking the task;
        stop at the first event the task must handle (kept in ``_held``), when the
        batcher is full (the update kept in ``_held`` until :meth:`_on_room`) or when
        this connection has ``max_in_flight`` updates unacked."""
        session = self.session
        limit = self.config.max_in_flight
        # Only callbacks change these, and none runs inside this loop. Past the token's
        # expiry nothing more is taken: the task notices and closes.
        stopped = (
            self._token_expired()
            or self._write_paused
            or self._aborted
            or self._stopping
            or self._batcher.closing
        )
        taken = 0
        while not stopped and self._in_flight < limit:
            event, self._held = self._held or session.next_event(), None
            if event is None:
                break
            if type(event) is not ProgressUpdate:
                self._held = event
                break
            if not self._offer(event):
                self._held = event
                self._room_wait = True
                self._batcher.when_room(self._on_room)
                break
            taken += 1
        self._counts.progress_update += taken
        self._send()  # errors next_event queued (bad_request, rate_limited)

    def _handled_inline(self) -> bool:
        """True when nothing is left for the task: every line taken, or the rest
        waiting for the batcher's room."""
        if self._room_wait:
            return True
        return (
            self._held is None
            and not self.session.pending_lines
            and self.session.state is _AUTHENTICATED
        )

    def _on_room(self) -> None:
        """The batcher has room: go on offering where :meth:`_take_updates` stopped
        (or let the task do it, when it is awake)."""
        self._room_wait = False
        if self._idle and self.session.state is _AUTHENTICATED:
            self._take_updates()
            if self._handled_inline():
                self._resume_if_drained()
                return
        self._wake()

    def _pause_if_flooded(self) -> None:
        if self.session.pending_lines > self.config.max_pending_lines and not self._paused:
            self._paused = True
            self._transport_call("pause_reading")

    def _resume_if_drained(self) -> None:
        if self._paused and not self._stopping and not self.session.pending_lines:
            self._paused = False
            self._transport_call("resume_reading")

    def eof_received(self) -> bool:
        self.session.receive_eof()
        self._wake()
        return True  # keep our half open: replies to the last lines still go out

    def connection_lost(self, exc: Exception | None) -> None:
        self._aborted = self._aborted or not self._stopping_output
        self._lost = True
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake()

    # -- control from the server ---------------------------------------------------------

    def request_stop(self) -> None:
        """Stop reading; finish in-flight updates, say goodbye, close (see _run)."""
        self._stopping = True
        self._transport_call("pause_reading")
        self._wake()

    def abort(self, reason: str) -> None:
        """Drop the connection now, unsent lines included."""
        if not self._aborted:
            log.info("tcp %s: dropping connection: %s", self.peer, reason)
        self._aborted = True
        self._wake()
        if self._transport is not None:
            self._transport.abort()

    def _transport_call(self, name: str) -> None:
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(RuntimeError):
                getattr(self._transport, name)()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _sleep(self, deadline: float | None = None) -> None:
        """Until a callback wakes the task (or ``deadline``, loop time, passes)."""
        if deadline is not None and (self._timer is None or self._timer.when() > deadline):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_timer)
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _on_timer(self) -> None:
        # Maybe early (the deadline moved since): the serve loop checks and sleeps again.
        self._timer = None
        self._wake()

    @property
    def _stopping_output(self) -> bool:
        """True once the session said its last line (an orderly close)."""
        return self.session.close_expected

    # -- lines out ---------------------------------------------------------------------------

    def _send(self) -> None:
        """Hand the session's queued lines to the transport now, after the corked ones
        (everything is dropped once aborted)."""
        lines = self.session.data_to_send()
        if self._corked:
            self._corked.extend(lines)
            self.uncork()
        elif lines and not (self._aborted or self._lost) and self._transport is not None:
            self._transport.write(lines[0] if len(lines) == 1 else b"".join(lines))

    def _on_event(self, topic: str, event: Event) -> None:
        """The subscription's listener: push another device's write (or drop the
        connection when events were missed or the client does not read). It runs
        inside the bus's dispatch, so it never raises: the other receivers come next."""
        try:
            self._push(event)
        except Exception:
            log.exception("tcp %s: push on %s failed", self.peer, topic)
            self.abort("internal error")

    def _push(self, event: Event) -> None:
        subscription = self._subscription
        if event is MISSED or (subscription is not None and subscription.dropped):
            # The bus lost events (an outage): a client resyncs (``sync``) after every
            # reconnect, which brings what it missed.
            self.abort("missed progress events; the client must sync")
            return
        if self.session.state is not _AUTHENTICATED:
            # Subscribed, auth_ok not said yet: what commits now predates auth_ok, and
            # the client's sync after auth_ok brings it (nothing may precede auth_ok).
            return
        if event.get("type") != "progress" or event.get("origin") == self.session_id:
            return
        line = self.server.push_lines.line(event)
        transport = self._transport
        if line is None or transport is None or self._aborted or self._lost:
            return
        self._counts.progress += 1
        self._cork(line)

    def _stored(self, message_id: MessageId, outcome: StoredEntry | MangaHubError) -> None:
        """The batcher's reply for one update: its ack (or error), in order."""
        self._in_flight -= 1
        if self._waiting_acks:
            self._wake()
        if self._aborted or self._lost:
            return
        if isinstance(outcome, StoredEntry):
            self._counts.ack += 1
            self._cork(ack_line(message_id, outcome.encoded))
            return
        metrics.TCP_ERRORS.labels(outcome.code).inc()
        self.session.send_error(
            outcome.code, outcome.message, message_id=message_id, details=outcome.details
        )
        self._cork_session()

    def _cork(self, line: bytes) -> None:
        """Queue ``line`` for this iteration's single write (see TcpServer.flush)."""
        if not self._corked:
            self.server.corked.append(self)
            if len(self.server.corked) == 1:
                self._loop.call_soon(self.server.flush)
        self._corked.append(line)

    def _cork_session(self) -> None:
        lines = self.session.data_to_send()
        if lines:
            for line in lines:
                self._cork(line)

    def uncork(self) -> None:
        """Write the corked lines (one socket write); drop a reader that lags."""
        lines, self._corked = self._corked, []
        transport = self._transport
        if not lines or transport is None or self._aborted or self._lost:
            return
        transport.write(lines[0] if len(lines) == 1 else b"".join(lines))
        if transport.get_write_buffer_size() > self.config.send_buffer:
            self.abort(f"send buffer full ({self.config.send_buffer} bytes); slow reader")

    # -- the connection's life -----------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._serve()
            # Orderly end: every update already submitted is committed and acked first.
            await self._drain()
            if self._expired:
                self.session.expire()
            elif self._stopping and not self.session.close_expected:
                self.session.send_error("unavailable", "server shutting down", close=True)
            self.session.close()
            self._send()
            if not (self._aborted or self._lost):
                await self._close_transport()
        except asyncio.CancelledError:
            self.abort("cancelled")
            raise
        except Exception:
            log.exception("tcp %s: connection failed", self.peer)
            self.abort("internal error")
        finally:
            if self._timer is not None:
                self._timer.cancel()
            if self._subscription is not None:
                await self._subscription.close()
            self.server._connections.discard(self)

    async def _close_transport(self) -> None:
        assert self._transport is not None
        self._transport.close()  # flushes what the transport still holds, then closes
        deadline = self._loop.time() + self.config.close_timeout
        while not self._lost and self._loop.time() < deadline:
            await self._sleep(deadline)
        if not self._lost:
            self.abort("peer does not read; closing")  # give up on the rest

    async def _drain(self) -> None:
        """Wait until every update this connection submitted is acked (or it is gone)."""
        while self._in_flight and not (self._aborted or self._lost):
            await self._await_ack()

    async def _await_ack(self) -> None:
        self._waiting_acks = True
        try:
            await self._sleep()
        finally:
            self._waiting_acks = False

    async def _serve(self) -> None:
        session = self.session
        while not (self._stopping or self._aborted or self._lost):
            if self._token_expired():
                return  # checked before each event: nothing is handled on an expired token
            if self._write_paused:
                await self._sleep()  # the client does not read its replies: only it waits
                continue
            event, self._held = self._held or session.next_event(), None
            self._send()
            if event is not None:
                await self._handle(event)
                continue
            if session.close_expected:
                return
            self._resume_if_drained()
            now = self._loop.time()
            if session.state is _AUTHENTICATED:
                deadline = self._last_rx + self.config.idle_timeout
                if self._expires_at is not None:
                    deadline = min(deadline, self._expires_at)
            else:
                deadline = self._auth_deadline
            if now >= deadline:
                if self._token_expired():
                    return
                if session.state is _AUTHENTICATED:
                    log.info("tcp %s: idle for %.0f s; closing", self.peer, now - self._last_rx)
                    session.close()
                else:
                    session.send_error("unauthorized", "no auth message in time", close=True)
                    self._send()
                return
            self._idle = True
            try:
                await self._sleep(deadline)
            finally:
                self._idle = False

    def _token_expired(self) -> bool:
        """True (and noted for _run, which acks what is in flight and then says why it
        closes) once the session's token ran out without renewal."""
        if (
            self.session.state is _AUTHENTICATED
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

    async def _handle(self, event: ClientEvent) -> None:
        self._counts.received(_EVENT_TYPES.get(type(event), "other"))
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
        self._send()

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
                f"progress:{principal.user_id}", listener=self._on_event
            )
        except Exception:
            log.exception("tcp %s: cannot subscribe to progress events", self.peer)
            self.session.reject_auth("progress events unavailable; retry later")
            return
        self.session.accept_auth(
            self.session_id, str(principal.user_id), self._set_expiry(principal)
        )
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
        """The task's way in: waits for room (this connection's and the batcher's)."""
        while True:
            if self._aborted or self._lost:
                return
            if self._in_flight >= self.config.max_in_flight:
                await self._await_ack()  # an ack makes room
            elif not self._offer(update):
                await self._batcher.room()
            else:
                return

    def _offer(self, update: ProgressUpdate) -> bool:
        """Queue one update for the group commit; False when the batcher is full."""
        assert self.user_id is not None
        write = progress_write(
            self.user_id,
            update.manga_id,
            update.chapter,
            volume=update.volume,
            status=update.status,
            device=self.session.device,
            origin=self.session_id,
        )
        if not self._batcher.offer(write, self._stored, update.id):
            return False
        self._in_flight += 1
        return True

    async def _sync(self, request: SyncRequest) -> None:
        assert self.user_id is not None
        # A sync sees every update this connection sent before it.
        await self._drain()
        rows = await self.server.runtime.reading_list.changed_since(
            self.user_id, request.since_version
        )
        for row in rows:
            while self._write_paused and not (self._aborted or self._lost):
                await self._sleep()  # the client reads the rows at its own pace
            self.session.send_progress(progress_json(row))
            self._send()
        self.session.send_sync_done()


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
        self.batcher: ProgressBatcher[EntryWrite, StoredEntry] = ProgressBatcher(
            self._write_one,
            runtime.reading_list.commit_many,
            max_batch=self.config.max_batch,
            max_queue=self.config.max_queued,
        )
        self.push_lines = _PushLines()
        self.counts = MessageCounts()
        # Connections with corked lines, written by one flush per loop iteration.
        self.corked: list[_Connection] = []
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._closing = False

    async def _write_one(self, write: EntryWrite) -> StoredEntry:
        (outcome,) = await self.runtime.reading_list.store_many([write])
        if isinstance(outcome, MangaHubError):
            raise outcome
        return outcome

    def flush(self) -> None:
        """Write every corked connection's lines (scheduled by the first cork)."""
        corked, self.corked = self.corked, []
        for conn in corked:
            try:
                conn.uncork()
            except Exception:
                log.exception("tcp %s: write failed", conn.peer)
                conn.abort("internal error")

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
