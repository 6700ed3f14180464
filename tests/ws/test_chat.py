"""The WebSocket chat over a real socket: a real uvicorn server on 127.0.0.1:0 and the
``websockets`` client library."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.protocol import State
from websockets.server import ServerProtocol

from mangahub.app import Runtime
from mangahub.http.routes.ws import _FrameCache
from tests.conftest import MakeUser, UserSession
from tests.ws.conftest import Address, Connect, WsClient

NewRoom = Callable[[], Awaitable[int]]


def presence_of(*users: UserSession) -> list[str]:
    return sorted(u.username for u in users)


async def joined(client: WsClient, room: int) -> dict[str, object]:
    """Join; check history, own presence and own notice arrive; return the history."""
    history = await client.join(room)
    presence = await client.recv()
    assert presence["type"] == "presence" and presence["room_id"] == room
    await client.recv_until(lambda m: m["type"] == "system" and "joined" in m["content"])
    return history


# --- chatting ---------------------------------------------------------------------------


async def test_two_users_chat_and_a_third_in_another_room_hears_nothing(
    ws_connect: Connect, make_user: MakeUser, new_room: NewRoom
) -> None:
    alice, bob, carol = await make_user("alice"), await make_user("bob"), await make_user("carol")
    room, other_room = await new_room(), await new_room()
    a, b, c = [await ws_connect(u.access_token) for u in (alice, bob, carol)]
    await joined(a, room)
    await joined(b, room)
    await joined(c, other_room)

    await a.chat(room, "hello bob")
    for client in (a, b):  # the sender gets its own message back, as stored
        message = await client.recv_type("chat")
        assert set(message) == {
            "type",
            "id",
            "room_id",
            "user_id",
            "username",
            "content",
            "timestamp",
        }
        assert message["room_id"] == room
        assert message["user_id"] == alice.id and message["username"] == alice.username
        assert message["content"] == "hello bob"
        datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00"))
    await b.chat(room, "hi alice")
    assert (await a.recv_type("chat"))["content"] == "hi alice"
    await c.expect_silence(0.3)


async def test_history_on_join_is_the_last_50_oldest_first(
    ws_connect: Connect, make_user: MakeUser, runtime: Runtime, room: int
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    for i in range(55):
        await runtime.chat.post(uuid.UUID(alice.id), room, f"message {i}")
    client = await ws_connect(bob.access_token)
    history = await client.join(room)
    assert history["room_id"] == room
    messages = history["messages"]
    assert [m["content"] for m in messages] == [f"message {i}" for i in range(5, 55)]
    assert [m["id"] for m in messages] == sorted(m["id"] for m in messages)
    assert set(messages[0]) == {"id", "room_id", "user_id", "username", "content", "timestamp"}


async def test_chat_history_over_http_matches_what_was_broadcast(
    ws_connect: Connect, make_user: MakeUser, client: httpx.AsyncClient, room: int
) -> None:
    alice = await make_user("alice")
    a = await ws_connect(alice.access_token)
    await joined(a, room)
    await a.chat(room, "first")
    first = await a.recv_type("chat")
    await a.chat(room, "second")
    second = await a.recv_type("chat")
    r = await client.get(f"/api/chat/{room}/messages", headers=alice.headers)
    assert r.status_code == 200, r.text
    newest_first = [{"type": "chat", **m} for m in r.json()["data"]]
    assert newest_first == [second, first]


async def test_several_rooms_on_one_connection(
    ws_connect: Connect, make_user: MakeUser, new_room: NewRoom
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    room1, room2 = await new_room(), await new_room()
    a = await ws_connect(alice.access_token)
    b = await ws_connect(bob.access_token)
    await joined(a, room1)
    await joined(a, room2)
    await joined(b, room2)
    await b.chat(room2, "in two")
    message = await a.recv_type("chat")
    assert (message["room_id"], message["content"]) == (room2, "in two")

    # Without room_id, a connection in two rooms must say which one.
    await a.send({"type": "chat", "content": "where?"})
    assert (await a.error())["code"] == "bad_request"
    # Chatting in a room the connection did not join is refused.
    await b.chat(room1, "not a member")
    assert (await b.error())["code"] == "forbidden"


async def test_query_manga_id_joins_at_once_and_room_id_may_be_omitted(
    ws_connect: Connect, make_user: MakeUser, room: int
) -> None:
    alice = await make_user("alice")
    a = await ws_connect(query=f"token={alice.access_token}&manga_id={room}")
    history = await a.recv()
    assert history == {"type": "history", "room_id": room, "messages": []}
    assert await a.recv() == {"type": "presence", "room_id": room, "users": [alice.username]}
    notice = await a.recv()
    assert notice["type"] == "system" and notice["content"] == f"{alice.username} joined the chat"
    await a.send({"type": "chat", "content": "one room, no id needed"})
    assert (await a.recv_type("chat"))["room_id"] == room


async def test_first_message_auth(ws_connect: Connect, make_user: MakeUser, room: int) -> None:
    alice = await make_user("alice")
    a = await ws_connect()
    await a.send({"type": "auth", "token": alice.access_token})
    ok = await a.recv()
    assert ok == {
        "type": "auth_ok",
        "user_id": alice.id,
        "username": alice.username,
        "expires_in": ok["expires_in"],
    }
    assert 0 < ok["expires_in"] <= 15 * 60
    await joined(a, room)
    await a.send({"type": "auth", "token": alice.access_token})
    assert (await a.recv_type("auth_ok"))["user_id"] == alice.id  # a renewal; still open
    await a.roundtrip()


async def test_header_and_query_tokens_are_confirmed_too(
    ws_connect: Connect, make_user: MakeUser
) -> None:
    alice = await make_user("alice")
    by_header = await ws_connect(alice.access_token)
    by_query = await ws_connect(query=f"token={alice.access_token}")
    for ws in (by_header, by_query):
        assert ws.auth_ok is not None
        assert ws.auth_ok["user_id"] == alice.id and ws.auth_ok["username"] == alice.username
        assert 0 < ws.auth_ok["expires_in"] <= 15 * 60


# --- joining, leaving, presence -----------------------------------------------------------


async def test_join_leave_and_disconnect_are_announced_with_presence(
    ws_connect: Connect, make_user: MakeUser, room: int
) -> None:
    alice, bob, carol = await make_user("alice"), await make_user("bob"), await make_user("carol")
    a = await ws_connect(alice.access_token)
    await joined(a, room)

    b = await ws_connect(bob.access_token)
    await b.join(room)
    assert await b.recv() == {
        "type": "presence",
        "room_id": room,
        "users": presence_of(alice, bob),
    }
    notice = await a.recv_type("system")
    assert notice["content"] == f"{bob.username} joined the chat" and notice["room_id"] == room
    assert (await a.recv_type("presence"))["users"] == presence_of(alice, bob)

    c = await ws_connect(carol.access_token)
    await joined(c, room)
    for client in (a, b):
        await client.recv_until(lambda m: m.get("content") == f"{carol.username} joined the chat")
        await client.recv_until(
            lambda m: m["type"] == "presence" and m["users"] == presence_of(alice, bob, carol)
        )

    await b.send({"type": "leave", "room_id": room})
    for client in (a, c):
        left = await client.recv_type("system")
        assert left["content"] == f"{bob.username} left the chat"
        assert (await client.recv_type("presence"))["users"] == presence_of(alice, carol)
    await b.send({"type": "leave", "room_id": room})  # not in it any more
    assert (await b.error())["code"] == "bad_request"

    await c.close()  # disconnect = leave
    left = await a.recv_type("system")
    assert left["content"] == f"{carol.username} left the chat"
    assert (await a.recv_type("presence"))["users"] == presence_of(alice)
    await b.expect_silence(0.2)


async def test_a_second_connection_of_the_same_user_is_not_announced_twice(
    ws_connect: Connect, make_user: MakeUser, room: int
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    b = await ws_connect(bob.access_token)
    await joined(b, room)
    laptop = await ws_connect(alice.access_token)
    await joined(laptop, room)
    assert (await b.recv_type("system"))["content"] == f"{alice.username} joined the chat"
    assert (await b.recv_type("presence"))["users"] == presence_of(alice, bob)
    phone = await ws_connect(alice.access_token)
    await phone.join(room)
    assert (await phone.recv())["users"] == presence_of(alice, bob)
    await phone.close()
    # Neither the second connection's join nor its leave is news to the room.
    await b.expect_silence(0.4)
    await laptop.close()
    assert (await b.recv_type("system"))["content"] == f"{alice.username} left the chat"


# --- errors -------------------------------------------------------------------------------


async def test_unknown_manga_is_not_found_and_the_connection_stays(
    ws_connect: Connect, make_user: MakeUser, room: int
) -> None:
    alice = await make_user("alice")
    a = await ws_connect(alice.access_token)
    for bad in (2_000_000_000, 2**40, -1):
        await a.send({"type": "join", "room_id": bad})
        error = await a.recv()
        assert error["type"] == "error" and error["code"] == "not_found", error
        assert set(error) == {"type", "code", "message"}
    await joined(a, room)  # still usable

    b = await ws_connect(alice.access_token, query="manga_id=2000000000")
    assert (await b.recv())["code"] == "not_found"
    await b.roundtrip()


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ("", "validation_error"),
        ("   ", "validation_error"),
        ("x" * 2001, "validation_error"),
        ("bell\x07", "validation_error"),
        (42, "bad_request"),
    ],
    ids=["empty", "blank", "2001-chars", "control-char", "not-a-string"],
)
async def test_bad_content_is_refused_and_the_connection_stays(
    ws_connect: Connect, make_user: MakeUser, room: int, content: object, code: str
) -> None:
    alice = await make_user("alice")
    a = await ws_connect(alice.access_token)
    await joined(a, room)
    await a.send({"type": "chat", "room_id": room, "content": content})
    error = await a.recv()
    assert error["type"] == "error" and error["code"] == code, error
    await a.chat(room, "y" * 2000)  # the longest allowed
    assert (await a.recv_type("chat"))["content"] == "y" * 2000


@pytest.mark.parametrize(
    "frame",
    [
        "{not json",
        "[1, 2]",
        '{"type": "dance"}',
        '{"room_id": 1}',
        '{"type": "join", "room_id": "5"}',
        '{"type": "join", "room_id": true}',
        b'{"type": "ping"',
    ],
    # (A message over 64 KiB is refused while read, close 1009: tests/test_limits.py.)
    ids=["broken", "array", "unknown-type", "no-type", "string-id", "bool-id", "binary"],
)
async def test_malformed_messages_are_bad_request_and_the_connection_stays(
    ws_connect: Connect, make_user: MakeUser, frame: str | bytes
) -> None:
    alice = await make_user("alice")
    a = await ws_connect(alice.access_token)
    await a.send(frame)
    error = await a.recv()
    assert error["type"] == "error" and error["code"] == "bad_request", error
    await a.roundtrip()


async def test_flooding_is_rate_limited_per_user_and_others_are_unaffected(
    ws_connect: Connect, make_user: MakeUser, room: int
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    a = await ws_connect(alice.access_token)
    b = await ws_connect(bob.access_token)
    await joined(a, room)
    await joined(b, room)
    await a.recv_type("presence")
    for i in range(25):
        await a.chat(room, f"spam {i}")
    chats, limited = 0, 0
    while chats + limited < 25:
        message = await a.recv()
        if message["type"] == "chat":
            chats += 1
        elif message["type"] == "error":
            assert message["code"] == "rate_limited", message
            limited += 1
    assert 10 <= chats < 25 and limited > 0  # burst 10, refilled at 5/s while sending

    # A second connection of the same user shares the limit; other users do not.
    await b.chat(room, "bob is fine")
    assert (await b.recv_until(lambda m: m.get("content") == "bob is fine"))["type"] == "chat"
    await asyncio.sleep(0.5)  # refill
    await a.chat(room, "after a pause")
    await a.recv_until(lambda m: m.get("content") == "after a pause")


async def test_progress_written_over_http_is_pushed_to_the_users_sockets(
    ws_connect: Connect, make_user: MakeUser, client: httpx.AsyncClient, new_room: NewRoom
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    manga_id = await new_room()
    a1 = await ws_connect(alice.access_token)
    a2 = await ws_connect(alice.access_token)
    b = await ws_connect(bob.access_token)
    for ws in (a1, a2, b):
        await ws.roundtrip()  # registered with the hub
    r = await client.put(
        "/api/users/progress", json={"manga_id": manga_id, "chapter": 12.5}, headers=alice.headers
    )
    assert r.status_code == 200, r.text
    for ws in (a1, a2):
        assert await ws.recv() == {"type": "progress", "data": r.json()}
    await b.expect_silence(0.3)


async def test_every_entry_write_is_pushed_as_the_whole_entry(
    ws_connect: Connect, make_user: MakeUser, client: httpx.AsyncClient, new_room: NewRoom
) -> None:
    alice = await make_user("alice")
    manga_id = await new_room()
    ws = await ws_connect(alice.access_token)
    await ws.roundtrip()
    r = await client.post(
        "/api/library", json={"manga_id": manga_id, "notes": "from the web"}, headers=alice.headers
    )
    assert r.status_code == 201, r.text
    assert await ws.recv() == {"type": "progress", "data": r.json()}
    r = await client.patch(
        f"/api/library/{manga_id}", json={"chapter": 4, "volume": 1}, headers=alice.headers
    )
    pushed = await ws.recv()
    assert pushed == {"type": "progress", "data": r.json()}
    assert (pushed["data"]["status"], pushed["data"]["notes"]) == ("reading", "from the web")
    r = await client.put(f"/api/manga/{manga_id}/rating", json={"score": 9}, headers=alice.headers)
    assert r.status_code == 200, r.text
    pushed = await ws.recv()
    assert (pushed["data"]["score"], pushed["data"]["chapter"]) == (9, 4)
    assert pushed["data"]["manga"]["average_rating"] == 9


# --- authentication -----------------------------------------------------------------------


async def test_bad_or_missing_token_gets_unauthorized_and_close_1008(
    ws_connect: Connect, make_user: MakeUser
) -> None:
    alice = await make_user("alice")
    cases = [
        await ws_connect("not-a-jwt"),  # header
        await ws_connect(query="token=not-a-jwt"),
        await ws_connect(additional_headers={"Authorization": f"Basic {alice.access_token}"}),
    ]
    first_message = await ws_connect()
    await first_message.send({"type": "auth", "token": alice.access_token + "x"})
    not_auth = await ws_connect()
    await not_auth.send({"type": "join", "room_id": 1})
    garbage = await ws_connect()
    await garbage.send("{nope")
    for ws in [*cases, first_message, not_auth]:
        error = await ws.recv()
        assert error["type"] == "error" and error["code"] == "unauthorized", error
        assert await ws.closed() == 1008
    assert (await garbage.recv())["code"] == "bad_request"
    assert await garbage.closed() == 1008


async def test_a_broadcast_goes_straight_to_sockets_that_keep_up(
    ws_address: Address, ws_connect: Connect, make_user: MakeUser, new_room: NewRoom
) -> None:
    """Members that read get each frame written at once, with no queue and no writer
    task, on the server MangaHub runs: what the fan-out's speed rests on."""
    host, port = ws_address

    async def frames() -> dict[str, float]:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
            page = (await http.get("/metrics")).text
        return {
            sample.labels["path"]: sample.value
            for family in text_string_to_metric_families(page)
            for sample in family.samples
            if sample.name == "mangahub_ws_frames_total"
        }

    alice, bob = await make_user("alice"), await make_user("bob")
    room = await new_room()
    a, b = [await ws_connect(u.access_token) for u in (alice, bob)]
    await joined(a, room)
    await joined(b, room)
    before = await frames()
    await a.chat(room, "straight through")
    for client in (a, b):
        assert (await client.recv_type("chat"))["content"] == "straight through"
    after = await frames()
    assert after["direct"] - before["direct"] >= 2
    assert after["queued"] == before["queued"]


@pytest.mark.parametrize("length", [10, 300, 70_000])
def test_a_broadcast_frame_is_built_once_and_as_the_connection_would(length: int) -> None:
    frames = _FrameCache()
    text = ("ü" * length)[:length]
    reference = ServerProtocol()
    reference.state = State.OPEN
    reference.send_text(text.encode())
    assert frames.text_frame(text) == b"".join(reference.data_to_send())
    assert frames.text_frame(text) is frames.text_frame(text)
    assert frames.text_frame("other") != frames.text_frame(text)
