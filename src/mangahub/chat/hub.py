"""The chat hub: one per HTTP app (so one per process), holding every chat client.

Rooms are manga ids. A room exists on a process while it has local members: the
first join subscribes to the bus topic ``chat:<room_id>`` and starts the room's pump,
the last leave closes both. Everything a room's members see travels over that topic
(chat messages published by ``ChatService`` after they are stored; join/leave notices
and presence announcements published here), so members on every process see the same
stream. Progress and notification pushes come the same way, one subscription to
``progress:<user_id>`` and ``notify:<user_id>`` per user with at least one connection
here, whose listener puts each push on the user's connections' send queues.

Membership changes (rooms and user feeds, including their bus subscriptions) happen
under one ``asyncio.Lock``, so a join racing the last leave of a room never ends up
in a room whose subscription was just closed. Fan-out never awaits a client: it hands
the frame, encoded once, to each member's bounded queue (see ``chat/client.py``).

Joining without losing a message: the member is added (and the room subscribed) first,
in a *pending* state that buffers broadcasts; then history is read; then the buffer
is flushed without the messages history already had. A message published before the
snapshot can also still be on its way through the bus when the member goes live, so
the history's ids are remembered for ``_DEDUPE_SECONDS`` and skipped when they arrive.

Session lifetime: a connection lasts as long as its access token. An ``auth`` message
on an authenticated connection is a renewal: a fresh token of the same user moves the
connection's end (``Client.expire_in``) and is confirmed with ``auth_ok`` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from mangahub import metrics
from mangahub.bus import Event, EventBus, Subscription
from mangahub.chat import presence as presence_sync
from mangahub.chat import protocol
from mangahub.chat.client import Client, FrameCounts, Transport
from mangahub.chat.config import ChatConfig
from mangahub.chat.presence import RoomPresence
from mangahub.chat.protocol import ClientMessage, CloseCode
from mangahub.domain.errors import (
    BadRequest,
    Forbidden,
    RateLimited,
    Unavailable,
    ValidationFailed,
)
from mangahub.domain.schemas import ChatMessagePublic, EntryPublic
from mangahub.ratelimit import TokenBucket
from mangahub.security.tokens import Principal

log = logging.getLogger(__name__)

_DEDUPE_SECONDS = 10.0
"""How long a joiner's history ids are kept to drop late broadcasts of the same messages."""
_BUS_QUEUE = 4096
"""Events buffered per room subscription; the pumps never block, so this is slack."""
_POSTS_IN_FLIGHT = 16
"""Chat messages of one connection being stored at once; its reader waits beyond that."""
_BURST_SHARE = 16
"""A room pump lets the members' writers run at least every ``send_queue // 16`` events."""


class ChatRooms(Protocol):
    """What the hub needs from ``ChatService``."""

    def submit(
        self, user_id: uuid.UUID, room_id: int, content: str
    ) -> Coroutine[Any, Any, ChatMessagePublic]:
        """Check and queue now; the coroutine stores and publishes (``ChatService.submit``)."""
        ...

    async def recent(self, room_id: int, n: int = ...) -> list[ChatMessagePublic]: ...


@dataclass(eq=False, slots=True)
class _Member:
    pending: list[tuple[int | None, str]] | None = field(default_factory=list)
    """Broadcasts held back until history is sent (``None`` once live)."""
    history_ids: frozenset[int] = frozenset()
    """Ids of the messages the join's history had; their broadcasts are not resent."""
    dedupe_until: float = 0.0
    counted: bool = False
    """Whether this connection's user was counted in (and announced to) the room."""
    seen: frozenset[str] | None = None
    """The presence this member was last sent (so it is only sent changes)."""


@dataclass(eq=False)
class _Room:
    room_id: int
    subscription: Subscription
    presence: RoomPresence
    members: dict[Client, _Member] = field(default_factory=dict)
    users: Counter[str] = field(default_factory=Counter)
    pump: asyncio.Task[None] | None = None
    presence_timer: asyncio.TimerHandle | None = None
    closed: bool = False

    async def close(self) -> None:
        self.closed = True
        if self.presence_timer is not None:
            self.presence_timer.cancel()
        await self.subscription.close()
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pump


@dataclass(eq=False)
class _UserFeed:
    """Per user: the chat rate limit and the connections on this process; its
    progress subscription hands each event to :meth:`Hub._on_feed_event` (no task,
    no queue: the push goes to each connection's bounded send queue at once)."""

    chat_bucket: TokenBucket
    clients: set[Client] = field(default_factory=set)
    subscription: Subscription | None = None
    missed: int = 0
    """The subscription's ``dropped`` when the connections were last told."""

    async def close(self) -> None:
        if self.subscription is not None:
            await self.subscription.close()


class Hub:
    """Rooms, members and fan-out of one process."""

    def __init__(
        self,
        chat: ChatRooms,
        bus: EventBus,
        config: ChatConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        verify: Callable[[str, uuid.UUID], Principal] | None = None,
    ) -> None:
        """``verify``: checks a renewal's token for the session's user
        (``TokenCodec.verify_renewal``); without it a second ``auth`` is refused."""
        self.config = config or ChatConfig()
        self._verify = verify
        self.node_id = uuid.uuid4().hex
        self._chat = chat
        self._bus = bus
        self._clock = clock
        self._lock = asyncio.Lock()
        self._rooms: dict[int, _Room] = {}
        self._feeds: dict[uuid.UUID, _UserFeed] = {}
        self._clients: set[Client] = set()
        self.frames = FrameCounts()
        self._all_gone = asyncio.Event()
        self._all_gone.set()
        self._closing = False
        self._refresher: asyncio.Task[None] | None = None
        metrics.track("ws", self)  # connections and rooms, read at scrape time

    @property
    def closing(self) -> bool:
        return self._closing

    def stats(self) -> dict[str, int]:
        return {"clients": len(self._clients), "rooms": len(self._rooms), "users": len(self._feeds)}

    # -- connections ------------------------------------------------------------------

    async def connect(self, user_id: uuid.UUID, username: str, transport: Transport) -> Client:
        """Register an authenticated connection (and its user's progress feed)."""
        if self._closing:
            raise Unavailable("server shutting down")
        cfg = self.config
        async with self._lock:
            feed = self._feeds.get(user_id)
            if feed is None:
                feed = _UserFeed(TokenBucket(cfg.chat_rate, cfg.chat_burst, self._clock))
                feed.subscription = await self._bus.subscribe(
                    f"progress:{user_id}",
                    f"notify:{user_id}",
                    listener=lambda _, event: self._on_feed_event(feed, event),
                )
                self._feeds[user_id] = feed
            client = Client(
                user_id,
                username,
                transport,
                queue_size=cfg.send_queue,
                close_timeout=cfg.close_timeout,
                limiter=TokenBucket(cfg.message_rate, cfg.message_burst, self._clock),
                counts=self.frames,
            )
            feed.clients.add(client)
            self._clients.add(client)
            self._all_gone.clear()
        return client

    async def disconnect(self, client: Client) -> None:
        """The connection ended (either side): leave its rooms (announcing it), let an
        orderly close finish, free the user's feed if it was the last connection."""
        # Messages the client sent before going are stored and reach the room first.
        await client.wait_tasks(self.config.close_timeout)
        for room_id in list(client.rooms):
            await self._leave(client, room_id, announce=True)
        if client.closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.close_timeout + 1):
                    await client.wait_closed()
        await client.shutdown()
        emptied: _UserFeed | None = None
        async with self._lock:
            self._clients.discard(client)
            feed = self._feeds.get(client.user_id)
            if feed is not None:
                feed.clients.discard(client)
                if not feed.clients:
                    emptied = self._feeds.pop(client.user_id)
            if not self._clients:
                self._all_gone.set()
        if emptied is not None:
            await emptied.close()

    async def close_all(self, code: int = CloseCode.GOING_AWAY, timeout: float = 5.0) -> None:
        """Graceful shutdown: refuse new clients, close every client with ``code`` after
        its queued messages, wait up to ``timeout`` for them to go, then drop the rest."""
        self._closing = True
        for client in list(self._clients):
            client.close(code, "server shutting down")
        try:
            async with asyncio.timeout(timeout):
                await self._all_gone.wait()
        except TimeoutError:
            for client in list(self._clients):
                client.abort(code, "server shutting down")
            # Aborting cancels stuck writers, so the endpoints finish almost at once.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._all_gone.wait()
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher

    # -- client messages --------------------------------------------------------------

    async def receive(self, client: Client, raw: str | bytes) -> None:
        """Act on one frame from ``client``; errors are raised as domain errors (the
        connection stays open for every one of them)."""
        # Charged before parsing: malformed frames cost the server work too.
        if not client.limiter.take():
            raise _rate_limited("too many messages", client.limiter)
        await self.handle(client, protocol.parse(raw))

    async def handle(self, client: Client, message: ClientMessage) -> None:
        """Act on one parsed message."""
        kind = metrics.label(type(message).__name__.lower(), metrics.WS_TYPES)
        metrics.WS_MESSAGES.labels("in", kind).inc()
        if isinstance(message, protocol.Join):
            await self.join(client, message.room_id)
        elif isinstance(message, protocol.Chat):
            await self._start_post(client, self._resolve_room(client, message.room_id), message)
        elif isinstance(message, protocol.Leave):
            await self.leave(client, self._resolve_room(client, message.room_id))
        elif isinstance(message, protocol.Ping):
            await client.send(protocol.encode(protocol.pong()))
        elif isinstance(message, protocol.Auth):
            await self.renew(client, message.token)
        # Pong: its arrival already counted as traffic for the idle timer.

    async def renew(self, client: Client, token: str) -> None:
        """Extend the session to a fresh token's expiry. A bad or expired token is
        ``Unauthorized`` and another user's ``Forbidden``; either way the session keeps
        its old expiry and stays open."""
        if self._verify is None:
            raise BadRequest("already authenticated")
        principal = self._verify(token, client.user_id)  # Unauthorized, Forbidden
        client.expire_in(principal.seconds_left())
        await client.send(protocol.encode(protocol.auth_ok(principal)))

    async def join(self, client: Client, room_id: int) -> None:
        """Add ``client`` to a room: it gets the history, then presence; the room (on
        every process) gets "<name> joined the chat" when the user was not there yet
        (as far as this process knows: through presence, other processes included)."""
        if self._closing:
            raise Unavailable("server shutting down")
        if room_id in client.rooms:
            await self._rejoin(client, room_id)
            return
        if len(client.rooms) >= self.config.max_rooms:
            raise ValidationFailed(f"at most {self.config.max_rooms} rooms per connection")
        member = _Member()
        async with self._lock:
            room = self._rooms.get(room_id)
            opened = room is None
            if room is None:
                room = await self._open_room(room_id)
            room.members[client] = member
            client.rooms.add(room_id)
        if opened:
            # Ask the other processes who they have in this room.
            await self._publish(room_id, self._sync(room, reply=True))
        try:
            messages = await self._chat.recent(room_id, self.config.history_size)  # NotFound
        except BaseException:
            await self._leave(client, room_id, announce=False)
            raise
        await client.send(protocol.encode(protocol.history(room_id, messages)))
        self._go_live(client, member, messages)
        member.counted = True
        room.users[client.username] += 1
        first = room.users[client.username] == 1
        # News only if the user was in the room on no process (another tab is not).
        arrived = first and client.username not in room.presence.users
        changed = first and room.presence.set_local(room.users)
        member.seen = room.presence.users
        await client.send(protocol.encode(protocol.presence(room_id, member.seen)))
        if arrived:
            await self._publish(
                room_id, protocol.system(room_id, protocol.joined_text(client.username))
            )
        if first:  # this process's users changed: tell the others
            await self._publish(room_id, self._sync(room, reply=False))
        if changed:
            self._presence_changed(room)

    async def _rejoin(self, client: Client, room_id: int) -> None:
        """Joining a room again refreshes history and presence; no second notice."""
        messages = await self._chat.recent(room_id, self.config.history_size)
        room = self._rooms[room_id]
        users = room.members[client].seen = room.presence.users
        await client.send(protocol.encode(protocol.history(room_id, messages)))
        await client.send(protocol.encode(protocol.presence(room_id, users)))

    async def leave(self, client: Client, room_id: int) -> None:
        if room_id not in client.rooms:
            raise BadRequest(f"not in room {room_id}")
        await self._leave(client, room_id, announce=True)

    async def _start_post(self, client: Client, room_id: int, message: protocol.Chat) -> None:
        """Store and broadcast a chat message (ChatService publishes it on the bus, which
        brings it back to every member, the sender included) without waiting for the
        commit: the reader goes on with the client's next frames, so a burst of
        messages shares transactions. Checks and content errors are answered at once;
        up to ``_POSTS_IN_FLIGHT`` messages of a connection are being stored at a time,
        in the order sent."""
        self._may_post(client, room_id)
        await client.room_for_task(_POSTS_IN_FLIGHT)
        client.start(self._chat.submit(client.user_id, room_id, message.content))

    def _may_post(self, client: Client, room_id: int) -> None:
        if room_id not in client.rooms:
            raise Forbidden(f"join room {room_id} before chatting in it")
        feed = self._feeds.get(client.user_id)
        if feed is not None and not feed.chat_bucket.take():
            raise _rate_limited("too many chat messages", feed.chat_bucket)

    # -- rooms ------------------------------------------------------------------------

    def _resolve_room(self, client: Client, room_id: int | None) -> int:
        if room_id is not None:
            return room_id
        if len(client.rooms) == 1:
            return next(iter(client.rooms))
        raise BadRequest("room_id is required (the connection is not in exactly one room)")

    async def _open_room(self, room_id: int) -> _Room:
        """Subscribe and start the pump; called under the lock."""
        subscription = await self._bus.subscribe(f"chat:{room_id}", maxsize=_BUS_QUEUE)
        room = _Room(
            room_id,
            subscription,
            RoomPresence(self.node_id, self.config.presence_refresh, self._clock),
        )
        room.pump = asyncio.create_task(self._room_pump(room), name=f"ws-room-{room_id}")
        self._rooms[room_id] = room
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_presence(), name="ws-presence")
        return room

    def _go_live(self, client: Client, member: _Member, history: list[ChatMessagePublic]) -> None:
        """Flush what arrived while history was read, minus what history contained."""
        member.history_ids = frozenset(m.id for m in history)
        member.dedupe_until = self._clock() + _DEDUPE_SECONDS
        pending, member.pending = member.pending or [], None
        for message_id, text in pending:
            if message_id not in member.history_ids:
                client.offer(text)

    async def _leave(self, client: Client, room_id: int, *, announce: bool) -> None:
        async with self._lock:
            client.rooms.discard(room_id)
            room = self._rooms.get(room_id)
            member = room.members.pop(client, None) if room is not None else None
            if room is None or member is None:
                return
            emptied = not room.members
            if emptied:
                del self._rooms[room_id]
        if emptied:
            await room.close()
        if not member.counted:
            return
        room.users[client.username] -= 1
        if room.users[client.username] > 0:
            return  # the same user is still here through another connection
        del room.users[client.username]
        changed = room.presence.set_local(room.users)
        if announce and client.username not in room.presence.users:
            await self._publish(
                room_id, protocol.system(room_id, protocol.left_text(client.username))
            )
        await self._publish(room_id, self._sync(room, reply=False))
        if changed and not emptied:
            self._presence_changed(room)

    async def _room_pump(self, room: _Room) -> None:
        """Bus → members. Never awaits a client."""
        missed = room.subscription.dropped
        burst, max_burst = 0, max(1, self.config.send_queue // _BURST_SHARE)
        async for _, event in room.subscription:
            if room.subscription.dropped != missed:
                missed = room.subscription.dropped
                self._tell_missed(room.members, room.room_id)
            kind = event.get("type")
            if kind == presence_sync.SYNC_TYPE:
                await self._on_sync(room, event)
                continue
            if kind not in ("chat", "system"):
                continue
            text = protocol.encode(event)
            message_id = event.get("id") if kind == "chat" else None
            if not isinstance(message_id, int):
                message_id = None
            now = self._clock()
            metrics.WS_MESSAGES.labels("out", kind).inc(len(room.members))
            for client, member in list(room.members.items()):
                if member.pending is None:
                    if member.history_ids and message_id in member.history_ids:
                        continue  # the joiner's history already showed it
                    if member.history_ids and now > member.dedupe_until:
                        member.history_ids = frozenset()
                    client.offer(text)
                elif len(member.pending) < self.config.send_queue:
                    member.pending.append((message_id, text))
                else:
                    client.abort(CloseCode.POLICY, "send queue overflow")
            # Let the writers run every few events of a burst (a busy Redis read): each
            # then sends a few frames per wake-up, and a queue grows by a small share
            # of its bound at most before its writer can drain it.
            burst += 1
            if burst >= max_burst:
                burst = 0
                await asyncio.sleep(0)

    # -- presence ---------------------------------------------------------------------

    def _sync(self, room: _Room, *, reply: bool) -> Event:
        return presence_sync.sync_event(room.room_id, self.node_id, room.users, reply=reply)

    async def _on_sync(self, room: _Room, event: Event) -> None:
        parsed = presence_sync.parse_sync(event)
        if parsed is None:
            return
        node, users, reply = parsed
        if room.presence.apply(node, users):
            self._presence_changed(room)
        if reply and node != self.node_id and room.users:
            await self._publish(room.room_id, self._sync(room, reply=False))

    def _presence_changed(self, room: _Room) -> None:
        """Coalesce: a burst of joins costs the room one presence message, not one per
        join (which would be quadratic in the room size)."""
        if room.presence_timer is None and not room.closed:
            loop = asyncio.get_running_loop()
            room.presence_timer = loop.call_later(
                self.config.presence_delay, self._send_presence, room
            )

    def _send_presence(self, room: _Room) -> None:
        room.presence_timer = None
        if room.closed:
            return
        users = room.presence.users
        text = protocol.encode(protocol.presence(room.room_id, users))
        for client, member in list(room.members.items()):
            if member.pending is None and member.seen != users:
                member.seen = users
                client.offer(text)

    async def _refresh_presence(self) -> None:
        """Re-announce this process's members and forget silent processes."""
        while self._rooms:
            await asyncio.sleep(self.config.presence_refresh)
            for room in list(self._rooms.values()):
                if room.presence.expire():
                    self._presence_changed(room)
                if room.users:
                    await self._publish(room.room_id, self._sync(room, reply=False))

    # -- progress ---------------------------------------------------------------------

    def _on_feed_event(self, feed: _UserFeed, event: Event) -> None:
        """A progress or notification event of the feed's user (the subscription's
        listener: it runs inside the publish, so it never awaits and never raises)."""
        try:
            subscription = feed.subscription
            if subscription is not None and subscription.dropped != feed.missed:
                feed.missed = subscription.dropped
                self._tell_missed(feed.clients, None)
            if event.get("type") == "notification":
                data = {k: v for k, v in event.items() if k not in ("type", "user_id")}
                text = protocol.encode({"type": "notification", "data": data})
            elif event.get("type") == "progress" and isinstance(event.get("data"), dict):
                text = protocol.encode({"type": "progress", "data": _progress_data(event["data"])})
            else:
                return
            for client in list(feed.clients):
                client.offer(text)
        except Exception:
            log.exception("chat: could not push an event to %d connections", len(feed.clients))

    def _tell_missed(self, clients: Iterable[Client], room_id: int | None) -> None:
        text = protocol.encode(protocol.missed(room_id))
        for client in list(clients):
            client.offer(text)

    async def _publish(self, room_id: int, event: Event) -> None:
        # Notices and presence are best effort: a bus outage must not fail a join.
        try:
            await self._bus.publish(f"chat:{room_id}", event)
        except Exception:
            log.warning("chat: could not publish to room %d", room_id, exc_info=True)


def _progress_data(data: dict[str, Any]) -> dict[str, Any]:
    """The entry exactly as every door serializes it (the bus event may carry
    an ``origin`` and backend-specific timestamp formats)."""
    try:
        return EntryPublic.model_validate(data).model_dump(mode="json")
    except ValidationError:
        return {k: v for k, v in data.items() if k != "origin"}


def _rate_limited(what: str, bucket: TokenBucket) -> RateLimited:
    wait = bucket.retry_after()
    return RateLimited(f"{what}; retry in {wait:.1f} s", retry_after=math.ceil(wait))
