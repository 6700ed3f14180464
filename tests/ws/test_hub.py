"""The hub without sockets: fake transports and a fake chat service over an in-process
bus. Two hubs on one bus behave like two server processes on one Redis."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from mangahub.bus import MemoryBus
from mangahub.chat.client import Client
from mangahub.chat.config import ChatConfig
from mangahub.chat.hub import Hub
from mangahub.chat.presence import sync_event
from mangahub.domain.errors import NotFound, Unavailable
from mangahub.domain.schemas import ChatMessagePublic


class FakeChat:
    """ChatService's contract: store, then publish on ``chat:<room>``; known rooms only."""

    def __init__(self, bus: MemoryBus, rooms: set[int]) -> None:
        self.bus = bus
        self.rooms = rooms
        self.stored: dict[int, list[ChatMessagePublic]] = {}
        self.before_snapshot: Callable[[], Any] | None = None
        self.gate: asyncio.Event | None = None
        self._ids = itertools.count(1)

    async def post(self, user_id: uuid.UUID, room_id: int, content: str) -> ChatMessagePublic:
        if room_id not in self.rooms:
            raise NotFound("manga not found")
        message = ChatMessagePublic(
            id=next(self._ids),
            room_id=room_id,
            user_id=user_id,
            username="x",
            content=content,
            timestamp=datetime.now(UTC),
        )
        self.stored.setdefault(room_id, []).append(message)
        await self.bus.publish(
            f"chat:{room_id}", {"type": "chat", **message.model_dump(mode="json")}
        )
        return message

    def submit(
        self, user_id: uuid.UUID, room_id: int, content: str
    ) -> Coroutine[Any, Any, ChatMessagePublic]:
        return self._store_after_gate(user_id, room_id, content)

    async def _store_after_gate(
        self, user_id: uuid.UUID, room_id: int, content: str
    ) -> ChatMessagePublic:
        if self.gate is not None:
            await self.gate.wait()  # a slow store: the commit has not happened yet
        return await self.post(user_id, room_id, content)

    async def recent(self, room_id: int, n: int = 50) -> list[ChatMessagePublic]:
        if room_id not in self.rooms:
            raise NotFound("manga not found")
        if self.before_snapshot is not None:
            await self.before_snapshot()
        return self.stored.get(room_id, [])[-n:]


class FakeSocket:
    """Records frames; ``stuck`` makes every send wait forever (a peer that stopped
    reading, its buffers full)."""

    def __init__(self, *, stuck: bool = False, delay: float = 0.0) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closed_with: int | None = None
        self.stuck = stuck
        self.delay = delay
        self.arrived = asyncio.Event()

    def send_now(self, text: str) -> bool:
        if self.stuck or self.delay:
            return False  # backed up: the frame waits in the client's queue
        self.frames.append(orjson.loads(text))
        self.arrived.set()
        return True

    async def send_text(self, text: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.frames.append(orjson.loads(text))
        self.arrived.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = code

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]

    async def wait_for(self, check: Callable[[list[dict[str, Any]]], bool]) -> None:
        async with asyncio.timeout(3):
            while not check(self.frames):
                self.arrived.clear()
                await self.arrived.wait()


ROOM = 7


@pytest.fixture
async def bus() -> MemoryBus:
    return MemoryBus()


@pytest.fixture
async def chat(bus: MemoryBus) -> FakeChat:
    return FakeChat(bus, {ROOM, ROOM + 1})


@pytest.fixture
async def hub(chat: FakeChat, bus: MemoryBus) -> AsyncIterator[Hub]:
    hub = Hub(chat, bus, ChatConfig(send_queue=8, presence_delay=0.01, chat_rate=1000))
    yield hub
    await hub.close_all(timeout=1)


_endpoints: set[asyncio.Task[None]] = set()


async def connect(
    hub: Hub, name: str, socket: FakeSocket | None = None
) -> tuple[Client, FakeSocket]:
    """Register a client, with a stand-in for the endpoint's reader: once the client is
    closed (its writer done), the connection ends and the hub forgets it."""
    socket = socket or FakeSocket()
    client = await hub.connect(uuid.uuid4(), name, socket)

    async def endpoint() -> None:
        await client.wait_closed()
        await hub.disconnect(client)

    task = asyncio.create_task(endpoint())
    _endpoints.add(task)
    task.add_done_callback(_endpoints.discard)
    return client, socket


class BackedUpSocket(FakeSocket):
    """A socket that takes frames at once until ``backed_up`` is set; then every
    write waits for ``drained`` (the peer reading again)."""

    def __init__(self) -> None:
        super().__init__()
        self.backed_up = False
        self.direct = 0
        self.drained = asyncio.Event()

    def send_now(self, text: str) -> bool:
        if self.backed_up:
            return False
        self.direct += 1
        return super().send_now(text)

    async def send_text(self, text: str) -> None:
        if self.backed_up:
            await self.drained.wait()
        await super().send_text(text)


async def test_frames_keep_their_order_through_a_backlog_and_go_direct_again(
    hub: Hub,
) -> None:
    socket = BackedUpSocket()
    client, _ = await connect(hub, "reader", socket)
    client.offer(chat_frame("m0").decode())  # straight to the socket
    socket.backed_up = True
    client.offer(chat_frame("m1").decode())
    client.offer(chat_frame("m2").decode())
    await asyncio.sleep(0)  # the writer takes m1 and waits on the socket
    socket.backed_up = False
    # The socket takes writes again, but m2 is still queued: m3 queues behind it.
    client.offer(chat_frame("m3").decode())
    assert client.queued == 2 and socket.direct == 1
    socket.drained.set()
    await socket.wait_for(lambda f: len(f) == 4)
    client.offer(chat_frame("m4").decode())  # caught up: straight to the socket again
    assert socket.direct == 2
    assert [f["content"] for f in socket.frames] == [f"m{i}" for i in range(5)]


async def test_a_client_that_stops_reading_is_dropped_and_the_room_goes_on(
    hub: Hub, chat: FakeChat
) -> None:
    slow, _ = await connect(hub, "slow", FakeSocket(stuck=True))
    fast, fast_socket = await connect(hub, "fast")
    await hub.join(fast, ROOM)
    # The slow client's join reply is queued (its writer is stuck on the first frame).
    await hub.join(slow, ROOM)
    for i in range(30):
        await chat.post(fast.user_id, ROOM, f"m{i}")
    await fast_socket.wait_for(lambda f: len([m for m in f if m["type"] == "chat"]) == 30)
    assert slow.close_code == 1008  # policy: did not keep up
    await slow.wait_closed()  # its stuck writer was cancelled, not left hanging
    assert [m["content"] for m in fast_socket.of_type("chat")] == [f"m{i}" for i in range(30)]
    await asyncio.sleep(0.05)  # its endpoint noticed and disconnected it
    assert hub.stats()["clients"] == 1


async def test_a_message_posted_while_history_is_read_arrives_exactly_once(
    hub: Hub, chat: FakeChat
) -> None:
    poster, _ = await connect(hub, "poster")
    await hub.join(poster, ROOM)
    await chat.post(poster.user_id, ROOM, "old")

    async def post_just_before_the_snapshot() -> None:
        chat.before_snapshot = None
        # Broadcast while the joiner is pending, and stored before the snapshot: it is
        # in history, so the buffered copy must not be sent again.
        await chat.post(poster.user_id, ROOM, "racing")

    joiner, socket = await connect(hub, "joiner")
    chat.before_snapshot = post_just_before_the_snapshot
    await hub.join(joiner, ROOM)
    await chat.post(poster.user_id, ROOM, "new")
    await socket.wait_for(lambda f: any(m.get("content") == "new" for m in f))
    [history] = socket.of_type("history")
    assert [m["content"] for m in history["messages"]] == ["old", "racing"]
    assert [m["content"] for m in socket.of_type("chat")] == ["new"]


async def test_a_message_broadcast_before_the_history_snapshot_is_not_lost(
    hub: Hub, chat: FakeChat, bus: MemoryBus
) -> None:
    joiner, socket = await connect(hub, "joiner")

    async def published_elsewhere() -> None:
        chat.before_snapshot = None
        # Another process stored and published message 99 just now; the snapshot (the
        # fake's own store) does not have it, so the buffered broadcast must go out.
        await bus.publish(f"chat:{ROOM}", {"type": "chat", "id": 99, "content": "elsewhere"})
        await asyncio.sleep(0.01)

    chat.before_snapshot = published_elsewhere
    await hub.join(joiner, ROOM)
    await socket.wait_for(lambda f: any(m.get("content") == "elsewhere" for m in f))
    types = [m["type"] for m in socket.frames]
    assert types.index("history") < types.index("chat")  # history first, then the rest


def chat_frame(content: str) -> bytes:
    return orjson.dumps({"type": "chat", "room_id": ROOM, "content": content})


async def test_a_connection_is_read_on_while_its_messages_are_stored_up_to_a_bound(
    chat: FakeChat, bus: MemoryBus
) -> None:
    hub = Hub(chat, bus, ChatConfig(chat_rate=1000, chat_burst=100, message_burst=100))
    client, socket = await connect(hub, "alice")
    await hub.join(client, ROOM)
    chat.gate = asyncio.Event()
    for i in range(16):  # none stored yet, and the reader is not held up
        await hub.receive(client, chat_frame(f"m{i}"))
    seventeenth = asyncio.create_task(hub.receive(client, chat_frame("m16")))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not seventeenth.done()  # 16 in flight: the reader waits for one to be stored
    assert chat.stored.get(ROOM, []) == []
    chat.gate.set()
    await seventeenth
    await socket.wait_for(lambda f: len([m for m in f if m["type"] == "chat"]) == 17)
    assert [m["content"] for m in socket.of_type("chat")] == [f"m{i}" for i in range(17)]
    await hub.close_all(timeout=1)


async def test_an_error_found_while_storing_is_answered_and_the_connection_stays(
    hub: Hub, chat: FakeChat
) -> None:
    client, socket = await connect(hub, "alice")
    await hub.join(client, ROOM)
    chat.rooms.discard(ROOM)  # the series was deleted after the join
    await hub.receive(client, chat_frame("hello"))
    await socket.wait_for(lambda f: any(m["type"] == "error" for m in f))
    [error] = socket.of_type("error")
    assert error["code"] == "not_found"
    assert not client.closing
    assert socket.of_type("chat") == []


async def test_unknown_room_is_not_found_and_leaves_nothing_behind(hub: Hub) -> None:
    client, socket = await connect(hub, "alice")
    with pytest.raises(NotFound):
        await hub.join(client, 12345)
    assert client.rooms == set()
    assert hub.stats()["rooms"] == 0
    assert socket.of_type("system") == []


async def test_racing_joins_and_leaves_end_with_the_room_freed(hub: Hub) -> None:
    clients = [(await connect(hub, f"user{i}"))[0] for i in range(20)]

    async def churn(client: Client) -> None:
        for _ in range(5):
            await hub.join(client, ROOM)
            await asyncio.sleep(0)
            await hub.leave(client, ROOM)

    await asyncio.gather(*(churn(c) for c in clients))
    assert hub.stats()["rooms"] == 0
    await asyncio.gather(*(hub.join(c, ROOM) for c in clients))
    assert hub.stats()["rooms"] == 1
    await asyncio.gather(*(hub.disconnect(c) for c in clients))
    assert hub.stats() == {"clients": 0, "rooms": 0, "users": 0}


async def test_presence_spans_processes_and_forgets_a_silent_one(
    chat: FakeChat, bus: MemoryBus
) -> None:
    config = ChatConfig(presence_delay=0.01, presence_refresh=0.1)
    hub_a, hub_b = Hub(chat, bus, config), Hub(chat, bus, config)
    try:
        alice, alice_socket = await connect(hub_a, "alice")
        bob, bob_socket = await connect(hub_b, "bob")
        await hub_a.join(alice, ROOM)
        await hub_b.join(bob, ROOM)

        def sees(*users: str) -> Callable[[list[dict[str, Any]]], bool]:
            def check(frames: list[dict[str, Any]]) -> bool:
                presence = [f["users"] for f in frames if f["type"] == "presence"]
                return bool(presence) and presence[-1] == [*users]

            return check

        await alice_socket.wait_for(sees("alice", "bob"))
        await bob_socket.wait_for(sees("alice", "bob"))
        assert [f["content"] for f in alice_socket.of_type("system")] == [
            "alice joined the chat",
            "bob joined the chat",
        ]
        # A process that announced a member and then went silent (crashed) is forgotten.
        await bus.publish(f"chat:{ROOM}", sync_event(ROOM, "ghost", ["casper"], reply=False))
        await alice_socket.wait_for(sees("alice", "bob", "casper"))
        await alice_socket.wait_for(sees("alice", "bob"))

        await hub_b.leave(bob, ROOM)
        await alice_socket.wait_for(sees("alice"))
        assert alice_socket.of_type("system")[-1]["content"] == "bob left the chat"
    finally:
        await hub_a.close_all(timeout=1)
        await hub_b.close_all(timeout=1)


async def test_close_all_sends_queued_messages_then_the_close_code(
    hub: Hub, chat: FakeChat
) -> None:
    client, socket = await connect(hub, "alice", FakeSocket(delay=0.01))
    await hub.join(client, ROOM)
    for i in range(5):
        await chat.post(client.user_id, ROOM, f"words {i}")
    await socket.wait_for(lambda f: any(m["type"] == "chat" for m in f))
    assert client.queued > 0
    await hub.close_all(code=1001, timeout=1)
    assert socket.closed_with == 1001
    assert [m["content"] for m in socket.of_type("chat")] == [f"words {i}" for i in range(5)]
    assert hub.stats() == {"clients": 0, "rooms": 0, "users": 0}
    with pytest.raises(Unavailable):
        await connect(hub, "late")
