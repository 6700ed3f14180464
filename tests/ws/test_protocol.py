"""The sans-I/O parts: message parsing and building, rate limiting, presence merging."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from mangahub.chat import protocol
from mangahub.chat.presence import RoomPresence, parse_sync, sync_event
from mangahub.chat.protocol import Auth, Chat, Join, Leave, Ping, Pong
from mangahub.domain.errors import BadRequest
from mangahub.domain.schemas import ChatMessagePublic
from mangahub.ratelimit import TokenBucket


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type":"auth","token":"t"}', Auth("t")),
        ('{"type":"join","room_id":5}', Join(5)),
        ('{"type":"leave","room_id":5}', Leave(5)),
        ('{"type":"leave"}', Leave(None)),
        ('{"type":"chat","room_id":5,"content":"hi"}', Chat(5, "hi")),
        ('{"type":"chat","content":""}', Chat(None, "")),  # content rules: ChatService
        ('{"type":"ping"}', Ping()),
        (b'{"type":"pong","extra":1}', Pong()),
    ],
)
def test_parse_accepts(raw: str | bytes, expected: protocol.ClientMessage) -> None:
    assert protocol.parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("{", "malformed JSON"),
        ("\xff", "malformed JSON"),
        ("null", "JSON object"),
        ('{"type": 3}', "missing message type"),
        ('{"type": "x"}', "unknown message type"),
        ('{"type": "join"}', "room_id"),
        ('{"type": "join", "room_id": 1.5}', "room_id"),
        ('{"type": "join", "room_id": false}', "room_id"),
        ('{"type": "chat", "room_id": 1}', "content"),
        ('{"type": "auth", "token": ""}', "token"),
        ('{"type": "auth", "token": "' + "a" * 9000 + '"}', "token"),
        (b"\x00" * (protocol.MAX_MESSAGE_BYTES + 1), "too large"),
    ],
)
def test_parse_refuses_with_bad_request(raw: str | bytes, needle: str) -> None:
    with pytest.raises(BadRequest, match=needle):
        protocol.parse(raw)


def test_server_messages_have_the_spec_shapes() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    message = ChatMessagePublic(
        id=1, room_id=5, user_id=uuid.UUID(int=1), username="alice", content="hi", timestamp=moment
    )
    assert orjson.loads(protocol.encode(protocol.history(5, [message]))) == {
        "type": "history",
        "room_id": 5,
        "messages": [
            {
                "id": 1,
                "room_id": 5,
                "user_id": str(uuid.UUID(int=1)),
                "username": "alice",
                "content": "hi",
                "timestamp": "2026-01-02T03:04:05Z",
            }
        ],
    }
    assert protocol.system(5, protocol.joined_text("alice"), moment) == {
        "type": "system",
        "room_id": 5,
        "content": "alice joined the chat",
        "timestamp": "2026-01-02T03:04:05Z",
    }
    assert protocol.system(5, protocol.left_text("bob"))["content"] == "bob left the chat"
    assert protocol.error("not_found", "manga not found") == {
        "type": "error",
        "code": "not_found",
        "message": "manga not found",
    }
    assert protocol.presence(5, {"bob", "alice"}) == {
        "type": "presence",
        "room_id": 5,
        "users": ["alice", "bob"],
    }


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(5.0, 10, lambda: now[0])
    assert all(bucket.take() for _ in range(10))
    assert not bucket.take()
    assert bucket.retry_after() == pytest.approx(0.2)
    now[0] += 0.2
    assert bucket.take() and not bucket.take()
    now[0] += 100
    assert sum(bucket.take() for _ in range(20)) == 10  # never more than the burst


def test_room_presence_merges_nodes_and_expires_silent_ones() -> None:
    now = [0.0]
    room = RoomPresence("me", refresh=10, clock=lambda: now[0])
    assert room.set_local(["alice"]) and room.users == {"alice"}
    assert not room.apply("me", frozenset({"ghost"}))  # own echo ignored
    assert room.apply("other", frozenset({"bob"})) and room.users == {"alice", "bob"}
    assert not room.apply("other", frozenset({"bob"}))  # a refresh changes nothing
    now[0] = 29
    assert not room.expire()
    now[0] = 31  # three refresh periods without news from "other"
    assert room.expire() and room.users == {"alice"}
    assert room.apply("third", frozenset({"carol"}))
    assert room.apply("third", frozenset())  # it emptied its side of the room
    assert room.users == {"alice"}


def test_sync_events_round_trip_and_junk_is_ignored() -> None:
    event = sync_event(5, "node", ["b", "a", "a"], reply=True)
    assert event == {
        "type": "presence_sync",
        "room_id": 5,
        "node": "node",
        "users": ["a", "b"],
        "reply": True,
    }
    assert parse_sync(event) == ("node", frozenset({"a", "b"}), True)
    assert parse_sync({"type": "presence_sync", "node": 1, "users": []}) is None
    assert parse_sync({"type": "presence_sync", "node": "n", "users": "x"}) is None
