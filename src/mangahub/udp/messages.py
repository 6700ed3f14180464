"""Wire format of the UDP notification door: parsing client datagrams, encoding
server datagrams, and fitting a NOTIFICATION into one datagram. Pure functions; the
state lives in :mod:`mangahub.udp.protocol`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, get_args

import orjson

MAX_DATAGRAM: Final = 8 * 1024
"""Largest datagram accepted or sent, in bytes."""
MAX_NOTIFICATION_ID: Final = 2**63 - 1
ELLIPSIS: Final = "…"

Address: TypeAlias = tuple[str, int]
UdpErrorCode: TypeAlias = Literal[
    "BAD_REQUEST",
    "VALIDATION_ERROR",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "CONFLICT",
    "RATE_LIMITED",
    "UNAVAILABLE",
    "INTERNAL",
]

# --- client messages -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscribe:
    """``{"type":"SUBSCRIBE","token":…}``: identity comes from the access token only.
    From an address already subscribed by the same user it renews the subscription
    (a fresh token moves its expiry)."""

    token: str


@dataclass(frozen=True, slots=True)
class Ping:
    """``{"type":"PING","nonce":…}``; ``nonce`` (from SUBSCRIBED) optional."""

    nonce: str | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """``{"type":"UNSUBSCRIBE","nonce":…}``."""

    nonce: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """``{"type":"ACK","id":N,"nonce":…}``."""

    id: int
    nonce: str | None = None


ClientMessage: TypeAlias = Subscribe | Ping | Unsubscribe | Ack


class BadDatagram(ValueError):
    """A datagram the hub answers with ``ERROR BAD_REQUEST``."""


def parse_datagram(data: bytes) -> ClientMessage:
    """Decode one client datagram or raise :class:`BadDatagram` saying why.

    ``type`` is matched case-insensitively; unknown extra fields are ignored (a
    ``user_id`` in a SUBSCRIBE changes nothing).
    """
    if len(data) > MAX_DATAGRAM:
        raise BadDatagram(f"datagram of {len(data)} bytes; the limit is {MAX_DATAGRAM}")
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadDatagram("datagram is not UTF-8 JSON") from None
    if not isinstance(message, dict):
        raise BadDatagram("expected a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise BadDatagram('"type" must be a string')
    match kind.upper():
        case "SUBSCRIBE":
            token = message.get("token")
            if not isinstance(token, str) or not token:
                raise BadDatagram('SUBSCRIBE needs "token": the access token')
            return Subscribe(token)
        case "PING":
            return Ping(_nonce(message))
        case "UNSUBSCRIBE":
            return Unsubscribe(_nonce(message))
        case "ACK":
            nid = message.get("id")
            # bool is an int in Python, never an id on the wire.
            if isinstance(nid, bool) or not isinstance(nid, int):
                raise BadDatagram('ACK needs "id": an integer')
            if not 1 <= nid <= MAX_NOTIFICATION_ID:
                raise BadDatagram('ACK "id" out of range')
            return Ack(nid, _nonce(message))
    raise BadDatagram(f"unknown message type {kind[:40]!r}")


MAX_NONCE: Final = 64


def _nonce(message: Mapping[str, Any]) -> str | None:
    nonce = message.get("nonce")
    if nonce is None:
        return None
    if not isinstance(nonce, str) or not 0 < len(nonce) <= MAX_NONCE:
        raise BadDatagram(f'"nonce" must be the string from SUBSCRIBED (≤ {MAX_NONCE} chars)')
    return nonce


# --- server messages -------------------------------------------------------------------


def encode(message: Mapping[str, Any]) -> bytes:
    return orjson.dumps(message)


def subscribed_message(
    user_id: uuid.UUID, expires_in: int | None = None, nonce: str | None = None
) -> bytes:
    """``expires_in``: whole seconds left on the token that (re)subscribed; relative,
    so the client's clock does not matter. Absent only for a token without expiry.
    ``nonce``: what the client's later PING, ACK and UNSUBSCRIBE echo, proving they
    come from the address that received this reply."""
    message: dict[str, Any] = {"type": "SUBSCRIBED", "user_id": str(user_id)}
    if nonce is not None:
        message["nonce"] = nonce
    if expires_in is not None:
        message["expires_in"] = expires_in
    return encode(message)


def pong_message(subscribed: bool) -> bytes:
    return encode({"type": "PONG", "subscribed": subscribed})


def unsubscribed_message() -> bytes:
    return encode({"type": "UNSUBSCRIBED"})


def error_message(code: UdpErrorCode, message: str) -> bytes:
    return encode({"type": "ERROR", "code": code, "message": message[:500]})


def udp_error_code(code: str) -> UdpErrorCode:
    """The domain's snake_case error code as the UDP door spells it (upper case)."""
    upper = code.upper()
    known: tuple[UdpErrorCode, ...] = get_args(UdpErrorCode)
    for candidate in known:
        if candidate == upper:
            return candidate
    return "INTERNAL"


class DoesNotFit(ValueError):
    """Even trimmed, the notification would not fit in one datagram."""


def notification_message(fields: Mapping[str, Any], limit: int = MAX_DATAGRAM) -> bytes:
    """A stored notification (its public fields, as the bus and the services carry
    them) as one NOTIFICATION datagram of at most ``limit`` bytes.

    ``new_chapter`` carries ``chapter`` and ``previous_chapter`` at the top level
    (SPEC); ``data`` is passed along whole for every kind. When the whole would not
    fit, the message text is cut (ending in "…") and ``truncated`` is set; only if
    an empty text still does not fit is ``data`` emptied, then the title cut.
    Never split: the full row is one ``GET /api/notifications`` away.
    """
    data = fields.get("data")
    data = dict(data) if isinstance(data, Mapping) else {}
    message: dict[str, Any] = {
        "type": "NOTIFICATION",
        "id": fields["id"],
        "kind": fields.get("kind"),
        "manga_id": fields.get("manga_id"),
        "title": str(fields.get("title") or ""),
    }
    if message["kind"] == "new_chapter":
        message["chapter"] = data.get("chapter")
        message["previous_chapter"] = data.get("previous_chapter")
    message["message"] = str(fields.get("message") or "")
    message["created_at"] = fields.get("created_at")
    message["data"] = data
    raw = encode(message)
    if len(raw) <= limit:
        return raw
    message["truncated"] = True
    text, message["message"] = message["message"], ""
    if len(encode(message)) > limit:
        message["data"] = {}
        if len(encode(message)) > limit:
            message["title"] = _longest_fit(message, "title", message["title"], limit)
    message["message"] = _longest_fit(message, "message", text, limit)
    return encode(message)


def _longest_fit(message: dict[str, Any], key: str, text: str, limit: int) -> str:
    """The longest prefix of ``text`` (plus "…" when cut) with which ``message`` encodes
    to at most ``limit`` bytes. Binary search: JSON escaping makes the size of a
    prefix unknowable without encoding it."""

    def fits(n: int) -> bool:
        message[key] = text if n == len(text) else text[:n] + ELLIPSIS
        return len(encode(message)) <= limit

    if fits(len(text)):
        return text
    lo, hi = -1, min(len(text) - 1, limit)  # each character is at least one byte
    while lo < hi:  # invariant: fits(lo) (or lo == -1), not fits(hi + 1)
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    if lo < 0:
        message[key] = ""
        if len(encode(message)) > limit:
            raise DoesNotFit(f"notification does not fit in {limit} bytes")
        return ""
    return text[:lo] + ELLIPSIS
