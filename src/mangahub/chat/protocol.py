"""Sans-I/O half of the WebSocket chat protocol (SPEC "WebSocket chat").

Parses what a client sends into typed messages, builds what the server sends, and
rate-limits; no sockets, no awaits. The endpoint (``http/routes/ws.py``) and the hub
(``chat/hub.py``) are the I/O around it, so every rule here is unit-testable with
plain strings.

Client → server (``room_id`` may be left out of ``chat``/``leave`` while the
connection is in exactly one room)::

    {"type":"auth","token":"<access>"}          first message, when no header/?token=;
                                                later, a renewal (same user, fresh token)
    {"type":"join","room_id":5}
    {"type":"leave","room_id":5}
    {"type":"chat","room_id":5,"content":"…"}
    {"type":"ping"}                             → {"type":"pong","server_time":"…"}
    {"type":"pong"}                             answer to the server's {"type":"ping"}

Bad input raises the domain errors every door shares (``BadRequest`` here); the
endpoint turns them into ``{"type":"error","code":…,"message":…}``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeAlias

import orjson

from mangahub.domain.errors import BadRequest, ErrorCode
from mangahub.domain.schemas import ChatMessagePublic
from mangahub.domain.timestamps import utc_timestamp
from mangahub.security.tokens import Principal

MAX_MESSAGE_BYTES: Final = 64 * 1024
"""Longest client message; a chat of 2,000 characters is at most ~12 KiB as JSON."""
MAX_TOKEN_LENGTH: Final = 8 * 1024


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server uses (RFC 6455 §7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    """Server shutting down: reconnect (to this or another process)."""
    POLICY = 1008
    """Auth failed or timed out, access token expired, idle timeout, send queue overflow."""
    INTERNAL = 1011


# --- client messages -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Auth:
    token: str


@dataclass(frozen=True, slots=True)
class Join:
    room_id: int


@dataclass(frozen=True, slots=True)
class Leave:
    room_id: int | None


@dataclass(frozen=True, slots=True)
class Chat:
    room_id: int | None
    content: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Pong:
    pass


ClientMessage: TypeAlias = Auth | Join | Leave | Chat | Ping | Pong


def parse(raw: str | bytes) -> ClientMessage:
    """One client message, or ``BadRequest`` saying what is wrong with it.

    Content is only checked to be a string here: its rules (1–2000 characters, no
    control characters) belong to ``ChatService``, which answers ``validation_error``.
    """
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode())
    if size > MAX_MESSAGE_BYTES:
        raise BadRequest(f"message too large (at most {MAX_MESSAGE_BYTES} bytes)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("malformed JSON") from exc
    if not isinstance(data, dict):
        raise BadRequest("a message must be a JSON object")
    kind = data.get("type")
    if kind == "chat":
        content = data.get("content")
        if not isinstance(content, str):
            raise BadRequest("content must be a string")
        return Chat(_room_id(data, required=False), content)
    if kind == "join":
        room_id = _room_id(data, required=True)
        assert room_id is not None
        return Join(room_id)
    if kind == "leave":
        return Leave(_room_id(data, required=False))
    if kind == "ping":
        return Ping()
    if kind == "pong":
        return Pong()
    if kind == "auth":
        token = data.get("token")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise BadRequest("token must be a non-empty string")
        return Auth(token)
    if not isinstance(kind, str):
        raise BadRequest("missing message type")
    raise BadRequest(f"unknown message type {kind[:40]!r}")


def _room_id(data: Mapping[str, Any], *, required: bool) -> int | None:
    value = data.get("room_id")
    if value is None and not required:
        return None
    # bool is an int in Python, and true is not a room.
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest("room_id must be an integer (a manga id)")
    return value


def parse_room_id(value: str) -> int:
    """``?manga_id=`` from the URL."""
    try:
        return int(value, 10)
    except ValueError:
        raise BadRequest("manga_id must be an integer") from None


# --- server messages -------------------------------------------------------------------


def encode(message: Mapping[str, Any]) -> str:
    """Compact JSON text: one frame. Encoded once per broadcast, not once per member."""
    return orjson.dumps(message).decode()


def error(code: ErrorCode, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


def history(room_id: int, messages: Sequence[ChatMessagePublic]) -> dict[str, Any]:
    """The last messages of a room, oldest first."""
    return {
        "type": "history",
        "room_id": room_id,
        "messages": [m.model_dump(mode="json") for m in messages],
    }


def system(room_id: int, content: str, moment: datetime | None = None) -> dict[str, Any]:
    return {
        "type": "system",
        "room_id": room_id,
        "content": content,
        "timestamp": utc_timestamp(moment),
    }


def joined_text(username: str) -> str:
    return f"{username} joined the chat"


def left_text(username: str) -> str:
    return f"{username} left the chat"


def missed(room_id: int | None) -> dict[str, Any]:
    """Events may have been lost (the server lost its bus for a while): with a room,
    chat messages (join again for the history); without, the user's own progress and
    notifications (read them again over HTTP)."""
    what = "chat messages" if room_id is not None else "progress and notification events"
    return {
        "type": "missed",
        "room_id": room_id,
        "message": f"some {what} may have been missed; fetch them again",
    }


def presence(room_id: int, users: Iterable[str]) -> dict[str, Any]:
    return {"type": "presence", "room_id": room_id, "users": sorted(users)}


def auth_ok(principal: Principal, now: datetime | None = None) -> dict[str, Any]:
    """The confirmation of authentication and of each renewal. ``expires_in``: whole
    seconds left on the token, relative so that clock skew does not matter."""
    return {
        "type": "auth_ok",
        "user_id": str(principal.user_id),
        "username": principal.username,
        "expires_in": int(principal.seconds_left(now) or 0),  # verified tokens have exp
    }


EXPIRED_TEXT: Final = encode(error("unauthorized", "access token expired"))
"""The last message of a session whose token ran out without a renewal."""


def pong() -> dict[str, Any]:
    return {"type": "pong", "server_time": utc_timestamp()}


PING_TEXT: Final = encode({"type": "ping"})
