"""One connected chat client: a bounded send queue, written straight to the socket
while the socket keeps up.

A frame for a client whose queue is empty goes to the socket at once when the socket
takes it without waiting (:meth:`Transport.send_now`): a broadcast to a room of
members that keep up is one pass over the members, with no task per member. Only
when a socket is backed up do frames wait in the client's queue, drained in order
by a writer task that exists while there is a backlog (or a close to send):

- a broadcast calls :meth:`Client.offer`, which never waits; a full queue means the
  client is not reading, and it is dropped (close 1008) instead of slowing the room;
- a reply to the client's own message calls :meth:`Client.send`, which waits for room
  (the client only slows itself down);
- :meth:`Client.close` lets the queue drain, then sends the close frame.

A client also carries its session's end (:meth:`Client.expire_in`): when the access
token that opened or last renewed the session runs out, the error "access token
expired" goes out as the last message and the connection closes with 1008. The
timer is cancelled however the client closes.

The socket is behind :class:`Transport`, so this module knows nothing of ASGI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from mangahub.chat.protocol import EXPIRED_TEXT, CloseCode, encode, error
from mangahub.domain.errors import MangaHubError
from mangahub.ratelimit import TokenBucket

log = logging.getLogger(__name__)


class Transport(Protocol):
    """The socket side of a client (the WebSocket endpoint implements it)."""

    def send_now(self, text: str) -> bool:
        """Write the frame at once if the socket takes it without waiting; False
        (nothing written) when the socket is backed up or cannot tell."""
        ...

    async def send_text(self, text: str) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


@dataclass(slots=True)
class FrameCounts:
    """Frames written straight to a socket, and frames that had to wait in a queue
    (their socket was backed up): shared by a hub's clients, read by the metrics."""

    direct: int = 0
    queued: int = 0


class Client:
    """A connection's identity, rooms and outgoing queue."""

    def __init__(
        self,
        user_id: uuid.UUID,
        username: str,
        transport: Transport,
        *,
        queue_size: int,
        close_timeout: float,
        limiter: TokenBucket,
        counts: FrameCounts | None = None,
    ) -> None:
        self.user_id = user_id
        self.username = username
        self.limiter = limiter
        """Messages this connection may send (any type)."""
        self.rooms: set[int] = set()
        self.close_code: int | None = None
        """Set once the server decided to close this client (why, as a close code)."""
        self._transport = transport
        self._counts = counts if counts is not None else FrameCounts()
        self._limit = queue_size
        self._low = max(1, queue_size // 2)
        self._queue: deque[str] = deque()
        # Runs while frames wait in the queue or the close frame is due; None otherwise.
        self._writer: asyncio.Task[None] | None = None
        self._finished = False  # nothing more can be sent (close sent, peer gone)
        self._done: asyncio.Future[None] | None = None  # made for wait_closed
        self._room: asyncio.Event | None = None  # made when a reply first waits for room
        self._close_reason = ""
        self._close_timeout = close_timeout
        self._sending = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._read_timeout: asyncio.Timeout | None = None
        self._expiry: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<Client {self.username} rooms={sorted(self.rooms)}>"

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- outgoing -------------------------------------------------------------------------

    def offer(self, text: str) -> bool:
        """Send or queue without waiting (broadcasts). On overflow the client is
        dropped with 1008 and False is returned."""
        if self.closing:
            return False
        if len(self._queue) >= self._limit:
            log.info("chat: dropping %s: send queue overflow", self.username)
            self.abort(CloseCode.POLICY, "send queue overflow")
            return False
        self._push(text)
        return True

    async def send(self, text: str) -> None:
        """Send or queue a reply once the backlog is under half the limit."""
        while not self.closing and len(self._queue) >= self._low:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()
        if not self.closing:
            self._push(text)

    def _push(self, text: str) -> None:
        # Straight to the socket only when nothing is queued or being written before
        # it, so frames keep their order.
        if not self._queue and self._writer is None:
            try:
                if self._transport.send_now(text):
                    self._counts.direct += 1
                    return
            except Exception as exc:  # the peer went away: the writer ends the client
                log.debug("chat: direct send to %s failed: %r", self.username, exc)
        self._counts.queued += 1
        self._queue.append(text)
        self._start_writer()

    async def reply_errors(self, action: Awaitable[object]) -> None:
        """Await ``action`` (the handling of one of the client's messages); a domain
        error becomes an error message to the client, and the connection stays."""
        try:
            await action
        except MangaHubError as exc:
            await self.send(encode(error(exc.code, exc.message)))
        except Exception:
            log.exception("chat: failed to handle a message from %s", self.username)
            await self.send(encode(error("internal", "internal error")))

    # -- work beside the reader -----------------------------------------------------------

    async def room_for_task(self, limit: int) -> None:
        """Wait until fewer than ``limit`` of this client's tasks (see :meth:`start`) run:
        the reader stops taking frames from a client that outpaces its own work."""
        while len(self._tasks) >= limit:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)

    def start(self, action: Coroutine[Any, Any, object]) -> None:
        """Run ``action`` beside the reader (a chat message being stored), its errors
        answered as by :meth:`reply_errors`."""
        task = asyncio.create_task(self.reply_errors(action))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_tasks(self, timeout: float) -> None:
        """Let this client's running tasks finish (at most ``timeout`` seconds)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)

    # -- session lifetime -----------------------------------------------------------------

    def expire_in(self, seconds: float | None) -> None:
        """End the session ``seconds`` from now (its token's life left), replacing any
        earlier end: a renewal moves it. None: the session does not expire."""
        self._cancel_expiry()
        if seconds is not None and not self.closing:
            loop = asyncio.get_running_loop()
            self._expiry = loop.call_later(seconds, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        if self.closing:
            return
        log.info("chat: session of %s expired", self.username)
        # The last message goes in even past the limit: the queue stops here. A reader
        # that no longer drains it is dropped by the close timeout, so nothing hangs.
        self._queue.append(EXPIRED_TEXT)
        self.close(CloseCode.POLICY, "access token expired")

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    # -- closing --------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then the close frame (an orderly close)."""
        if self.closing:
            return
        self._cancel_expiry()
        self.close_code, self._close_reason = code, reason
        self._wake_all()

    def abort(self, code: int, reason: str) -> None:
        """Close now: queued messages are discarded. A writer stuck on a socket that
        does not drain is cancelled (its close frame could not get out either)."""
        self._cancel_expiry()
        if not self.closing:
            self.close_code, self._close_reason = code, reason
        self._queue.clear()
        if self._sending and self._writer is not None:
            self._writer.cancel()
        self._wake_all()

    async def wait_closed(self) -> None:
        """Until the client has finished (close frame sent or given up)."""
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            if self._finished and (self._writer is None or self._writer.done()):
                self._done.set_result(None)
        await asyncio.shield(self._done)

    async def shutdown(self) -> None:
        """The peer is gone: stop the writer at once."""
        self._finished = True  # no writer starts for a close frame nobody reads
        self.abort(self.close_code or CloseCode.NORMAL, "")
        writer = self._writer
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(writer)
        self._set_done()

    def _set_done(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def watch_read(self, timeout: asyncio.Timeout | None) -> None:
        """Register the timeout around the endpoint's pending receive, so that a close
        decided here (overflow, shutdown) wakes the reader instead of waiting for the
        peer's next frame."""
        self._read_timeout = timeout

    def _start_writer(self) -> None:
        if self._writer is None and not self._finished:
            self._writer = asyncio.create_task(
                self._write_loop(), name=f"ws-writer-{self.username}"
            )

    def _wake_all(self) -> None:
        if self.closing:
            self._start_writer()  # to send the close frame after the queue
        if self._room is not None:
            self._room.set()
        timeout = self._read_timeout
        if timeout is not None and not timeout.expired():
            with contextlib.suppress(RuntimeError):  # already exited
                timeout.reschedule(0)

    # -- the writer task ------------------------------------------------------------------

    async def _write_loop(self) -> None:
        try:
            while self._queue:
                text = self._queue.popleft()
                if self._room is not None and len(self._queue) < self._low:
                    self._room.set()
                self._sending = True
                try:
                    await self._transport.send_text(text)
                finally:
                    self._sending = False
            if not self.closing:
                self._writer = None  # caught up: the next frame goes straight out
                return
            async with asyncio.timeout(self._close_timeout):
                await self._transport.close(self.close_code or CloseCode.NORMAL, self._close_reason)
        except asyncio.CancelledError:
            pass  # aborted or shut down: nothing more can be sent
        except TimeoutError:
            log.info("chat: %s did not take its close frame in time", self.username)
        except Exception as exc:  # the peer went away mid-send
            log.debug("chat: writer for %s ended: %r", self.username, exc)
        # Ended for good (the close frame is out, or the socket failed).
        self._finished = True
        self._cancel_expiry()  # the peer went away first
        if not self.closing:
            self.close_code = CloseCode.NORMAL
        self._queue.clear()
        self._wake_all()
        self._set_done()
