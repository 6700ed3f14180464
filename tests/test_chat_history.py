"""GET /api/chat/{manga_id}/messages, and the chat service behind it (post, recent)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mangahub.app import Runtime
from mangahub.domain.errors import NotFound, ValidationFailed
from mangahub.domain.schemas import ChatMessagePublic
from mangahub.services.chat_store import MessageStore, NewMessage, StoredMessage
from mangahub.storage.database import Database
from mangahub.storage.models import ChatMessage, Manga, User
from mangahub.storage.types import utcnow
from tests.conftest import MakeUser, UserSession
from tests.test_library import (
    UNKNOWN_MANGA,
    assert_error,
    assert_utc_iso,
    error_fields,
    live_subscription,
    new_manga,
)

MESSAGE_FIELDS = {"id", "room_id", "user_id", "username", "content", "timestamp"}


async def post_messages(
    runtime: Runtime, room_id: int, *authors: UserSession
) -> list[ChatMessagePublic]:
    return [
        await runtime.chat.post(uuid.UUID(user.id), room_id, f"message {i}")
        for i, user in enumerate(authors)
    ]


async def history(
    client: httpx.AsyncClient, user: UserSession, room_id: int, query: str = ""
) -> dict[str, Any]:
    r = await client.get(f"/api/chat/{room_id}/messages{query}", headers=user.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_history_is_newest_first(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    alice, bob = await make_user(), await make_user()
    room = await new_manga(runtime)
    posted = await post_messages(runtime, room, alice, bob, alice)

    body = await history(client, bob, room)
    assert (body["room_id"], body["limit"], body["before"], body["next_before"]) == (
        room,
        50,
        None,
        None,
    )
    messages = body["data"]
    assert [m["id"] for m in messages] == [p.id for p in reversed(posted)]
    assert all(set(m) == MESSAGE_FIELDS for m in messages)
    newest = messages[0]
    assert (newest["room_id"], newest["user_id"], newest["username"]) == (
        room,
        alice.id,
        alice.username,
    )
    assert newest["content"] == "message 2"
    assert_utc_iso(newest["timestamp"])


async def test_history_pages_backwards_with_before(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    room = await new_manga(runtime)
    ids = [m.id for m in await post_messages(runtime, room, *[user] * 5)]

    first = await history(client, user, room, "?limit=2")
    assert [m["id"] for m in first["data"]] == [ids[4], ids[3]]
    assert first["next_before"] == ids[3]
    second = await history(client, user, room, f"?limit=2&before={first['next_before']}")
    assert [m["id"] for m in second["data"]] == [ids[2], ids[1]]
    third = await history(client, user, room, f"?limit=2&before={second['next_before']}")
    assert [m["id"] for m in third["data"]] == [ids[0]]
    assert third["next_before"] is None

    assert (await history(client, user, room, f"?before={ids[0]}"))["data"] == []
    everything = await history(client, user, room, f"?before={2**70}")
    assert len(everything["data"]) == 5


async def test_rooms_are_separate(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    room, other = await new_manga(runtime), await new_manga(runtime)
    await post_messages(runtime, other, user)
    assert (await history(client, user, room))["data"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?before=0", "before"),
        ("?before=x", "before"),
    ],
)
async def test_bad_cursor_or_limit_names_the_field(
    client: httpx.AsyncClient, make_user: MakeUser, runtime: Runtime, query: str, field: str
) -> None:
    user = await make_user()
    room = await new_manga(runtime)
    r = await client.get(f"/api/chat/{room}/messages{query}", headers=user.headers)
    assert r.status_code == 422, r.text
    assert field in {f.split(".")[-1] for f in error_fields(r)}


async def test_unknown_room_is_not_found(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    for room in (UNKNOWN_MANGA, 2**70):
        r = await client.get(f"/api/chat/{room}/messages", headers=user.headers)
        assert_error(r, 404, "not_found")


async def test_requires_a_token(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/chat/1/messages"), 401, "unauthorized")


# --- the service, as the WebSocket door uses it ----------------------------------------


async def test_post_is_stored_then_published_to_the_room(
    make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    room = await new_manga(runtime)
    sub = await live_subscription(runtime.bus, f"chat:{room}")
    try:
        message = await runtime.chat.post(uuid.UUID(user.id), room, "<b>hi</b> & bye")
        topic, event = await asyncio.wait_for(sub.get(), 2)
        assert topic == f"chat:{room}"
        assert event == {"type": "chat", **message.model_dump(mode="json")}
        assert event["content"] == "<b>hi</b> & bye"
        assert event["username"] == user.username
    finally:
        await sub.close()


@pytest.mark.parametrize("content", ["", "  ", "x" * 2001, "ring\x07", "esc\x1b[0m"])
async def test_post_validates_content(make_user: MakeUser, runtime: Runtime, content: str) -> None:
    user = await make_user()
    room = await new_manga(runtime)
    with pytest.raises(ValidationFailed) as caught:
        await runtime.chat.post(uuid.UUID(user.id), room, content)
    assert {d["field"] for d in caught.value.details} == {"content"}


async def test_post_to_an_unknown_room_is_not_found(make_user: MakeUser, runtime: Runtime) -> None:
    user = await make_user()
    with pytest.raises(NotFound):
        await runtime.chat.post(uuid.UUID(user.id), UNKNOWN_MANGA, "hello")


async def test_post_by_an_unknown_user_is_not_found_and_stores_nothing(
    runtime: Runtime,
) -> None:
    room = await new_manga(runtime)
    with pytest.raises(NotFound) as caught:
        await runtime.chat.post(uuid.uuid4(), room, "hello")
    assert caught.value.message == "user not found"
    with pytest.raises(NotFound) as unknown_room:
        await runtime.chat.post(uuid.uuid4(), UNKNOWN_MANGA, "hello")
    assert unknown_room.value.message == "manga not found"
    assert await runtime.chat.recent(room) == []


async def test_post_returns_what_was_stored(make_user: MakeUser, runtime: Runtime) -> None:
    user = await make_user()
    room = await new_manga(runtime)
    posted = await runtime.chat.post(uuid.UUID(user.id), room, "stored as sent")
    assert await runtime.chat.recent(room) == [posted]
    assert posted.username == user.username


async def test_concurrent_posts_share_transactions_in_order(
    make_user: MakeUser, runtime: Runtime
) -> None:
    alice, bob = await make_user(), await make_user()
    room, other = await new_manga(runtime), await new_manga(runtime)
    store = MessageStore(runtime.db)
    authors = [uuid.UUID(alice.id), uuid.UUID(bob.id), uuid.uuid4()]  # the last is unknown
    messages = [
        NewMessage(authors[i % 3], (room, other, UNKNOWN_MANGA)[i % 4 % 3], f"m{i}", utcnow())
        for i in range(24)
    ]
    results = await asyncio.gather(*(store.store(m) for m in messages), return_exceptions=True)
    assert store.transactions < len(messages)  # shared
    stored_ids = []
    for message, result in zip(messages, results, strict=True):
        if message.room_id == UNKNOWN_MANGA:
            assert isinstance(result, NotFound) and result.message == "manga not found"
        elif message.user_id == authors[2]:
            assert isinstance(result, NotFound) and result.message == "user not found"
        else:
            assert isinstance(result, StoredMessage), result
            author = alice if message.user_id == authors[0] else bob
            assert result.username == author.username
            stored_ids.append(result.id)
    assert stored_ids == sorted(stored_ids)  # ids in submission order
    history = {
        m.id: m for m in [*await runtime.chat.recent(room), *await runtime.chat.recent(other)]
    }
    assert sorted(history) == sorted(stored_ids)
    for message, result in zip(messages, results, strict=True):
        if isinstance(result, StoredMessage):
            kept = history[result.id]
            assert (kept.room_id, kept.user_id, kept.content, kept.timestamp) == (
                message.room_id,
                message.user_id,
                message.content,
                message.created_at,
            )


async def test_recent_is_oldest_first(make_user: MakeUser, runtime: Runtime) -> None:
    user = await make_user()
    room = await new_manga(runtime)
    ids = [m.id for m in await post_messages(runtime, room, *[user] * 4)]
    assert [m.id for m in await runtime.chat.recent(room, 3)] == ids[1:]
    assert [m.id for m in await runtime.chat.recent(room)] == ids
    with pytest.raises(NotFound):
        await runtime.chat.recent(UNKNOWN_MANGA)


async def test_an_in_memory_database_stores_chat_through_its_sessions() -> None:
    """A second connection would not see an in-memory SQLite database: its messages go
    through the engine (what PostgreSQL does too), with the same answers."""
    db = Database("sqlite+aiosqlite:///:memory:")
    try:
        await db.migrate()
        async with db.session() as s:
            room = Manga(slug="memory-room", title="Memory room", status="ongoing")
            author = User(username="memory_author", email="m@example.com", password_hash="x")
            s.add_all([room, author])
            await s.flush()
            room_id, user_id = room.id, author.id
        store = MessageStore(db)
        sent = NewMessage(user_id, room_id, "kept in memory", utcnow())
        stored = await store.store(sent)
        assert stored.username == "memory_author"
        with pytest.raises(NotFound, match="user not found"):
            await store.store(NewMessage(uuid.uuid4(), room_id, "nobody", utcnow()))
        async with db.read() as conn:
            row = (
                await conn.execute(
                    select(ChatMessage.user_id, ChatMessage.content, ChatMessage.created_at).where(
                        ChatMessage.id == stored.id
                    )
                )
            ).one()
        assert tuple(row) == (user_id, sent.content, sent.created_at)
    finally:
        await db.close()


async def test_a_message_the_database_refuses_fails_alone(
    make_user: MakeUser, runtime: Runtime
) -> None:
    """A constraint violation reaches the caller as SQLAlchemy's IntegrityError on
    every backend (on SQLite the lone insert runs on the driver itself)."""
    user = await make_user()
    room = await new_manga(runtime)
    store = MessageStore(runtime.db)
    with pytest.raises(IntegrityError):
        await store.store(NewMessage(uuid.UUID(user.id), room, "", utcnow()))
    stored = await store.store(NewMessage(uuid.UUID(user.id), room, "next", utcnow()))
    assert [m.id for m in await runtime.chat.recent(room)] == [stored.id]
