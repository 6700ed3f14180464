"""Sans-I/O session of the TCP progress-sync protocol (SPEC "TCP progress sync").

Newline-delimited JSON, UTF-8, one object per line, a line at most 64 KiB. This
module does no I/O and never awaits: :class:`ServerSession` takes bytes in
(:meth:`~ServerSession.receive_data`), hands out typed client events one at a time
(:meth:`~ServerSession.next_event`), and queues encoded reply lines
(:meth:`~ServerSession.data_to_send`). The asyncio server in ``server.py`` is a thin
wrapper: it owns the socket, the timers (auth 10 s, idle 90 s, token expiry), the
flow control and the calls into the services.

Session states::

    AWAITING_AUTH --auth--> AUTHENTICATING --accept_auth--> AUTHENTICATED <---+
          |                       |                          |    |           | accept_renewal
          | anything else         | reject_auth       expire |    | auth      | reject_renewal
          v                       v                          |    +-----------+ (RenewRequest)
        CLOSED <------------------+--------------------------+
                 oversized line, receive_eof

A session lasts as long as the token that opened it: ``auth_ok`` says how many
seconds are left (``expires_in``), the wrapper calls :meth:`~ServerSession.expire`
when they run out, and the client renews in place by sending ``auth`` again with a
fresh token of the same user (answered by ``auth_ok`` with the new ``expires_in``).

Errors use the closed set of codes shared by every door; which ones end the
session:

=========================================  ==============  ===========
what                                       code            connection
=========================================  ==============  ===========
bad or missing token                       unauthorized    closed
any other message before auth              unauthorized    closed
unparseable line before auth               bad_request     closed
line longer than 64 KiB                    bad_request     closed
the session's token expired (not renewed)  unauthorized    closed
renewal: bad, expired or missing token     unauthorized    stays open
renewal: a token of another user           forbidden       stays open
malformed JSON, unknown type, bad fields   bad_request     stays open
more than 50 msg/s (burst 100)             rate_limited    stays open
=========================================  ==============  ===========

Events are pulled one at a time on purpose: a chunk may hold ``auth`` followed by
``progress_update``, and the second line must be judged in the state the first
one leaves behind (only known once the wrapper verified the token).

Conflict rule (what every door and device can rely on): the server orders writes
to one user's progress by arrival; each committed write takes the next value of
that user's version counter, so versions only increase; the last write to a
(user, manga) pair wins; every device converges by receiving each committed write
as a ``progress`` push and, after a reconnect, by ``sync`` from the highest version
it has seen.
"""

from __future__ import annotations

import enum
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, NamedTuple, TypeAlias, TypeGuard

import orjson
from pydantic import ValidationError

from mangahub.domain.enums import ReadingStatus
from mangahub.domain.errors import ErrorCode
from mangahub.domain.schemas import ProgressIn
from mangahub.domain.timestamps import utc_timestamp
from mangahub.ratelimit import TokenBucket

MAX_LINE: Final = 64 * 1024
"""Longest accepted line in bytes, newline excluded."""
RATE_PER_SECOND: Final = 50.0
RATE_BURST: Final = 100
MAX_ID_LENGTH: Final = 128
MAX_TOKEN_LENGTH: Final = 8 * 1024
MAX_DEVICE_LENGTH: Final = 100
MAX_VERSION: Final = 2**63 - 1

MessageId: TypeAlias = str | int


class SessionState(enum.Enum):
    AWAITING_AUTH = "awaiting_auth"
    AUTHENTICATING = "authenticating"
    AUTHENTICATED = "authenticated"
    CLOSED = "closed"


# Members as module globals for the per-message code: a global is read in a quarter
# of the time an Enum class attribute takes.
_AWAITING_AUTH = SessionState.AWAITING_AUTH
_AUTHENTICATING = SessionState.AUTHENTICATING
_AUTHENTICATED = SessionState.AUTHENTICATED
_CLOSED = SessionState.CLOSED


# --- client events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """``{"type":"auth","token":…,"device":…}``: the first message of every session."""

    token: str
    device: str | None


@dataclass(frozen=True, slots=True)
class RenewRequest:
    """``{"type":"auth","token":…}`` again on an authenticated session: extend it to the
    new token's expiry. ``device`` is fixed at the first auth and ignored here."""

    token: str


class ProgressUpdate(NamedTuple):
    """``{"type":"progress_update","id":…,"data":{manga_id, chapter, volume?, status?}}``.
    A tuple, unlike the other events: one is made per update, and a frozen dataclass
    costs twice as much to build."""

    id: MessageId
    manga_id: int
    chapter: float
    status: ReadingStatus | None = None
    volume: int | None = None


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """``{"type":"sync","since_version":n}``: rows changed after version n."""

    since_version: int


@dataclass(frozen=True, slots=True)
class PingRequest:
    """``{"type":"ping"}``."""


ClientEvent: TypeAlias = AuthRequest | RenewRequest | ProgressUpdate | SyncRequest | PingRequest


# --- wire helpers (shared with the client) ---------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as one line: compact UTF-8 JSON and ``\\n`` (JSON escapes any newline)."""
    return orjson.dumps(message, default=_default, option=orjson.OPT_APPEND_NEWLINE)


def ack_line(message_id: MessageId, progress: bytes) -> bytes:
    """``encode({"type": "ack", "id": message_id, "progress": …})`` around a progress
    entry already encoded (compact JSON): the entry is encoded once for every line."""
    return b'{"type":"ack","id":' + orjson.dumps(message_id) + b',"progress":' + progress + b"}\n"


def progress_line(data: bytes) -> bytes:
    """``encode({"type": "progress", "data": …})`` around an already encoded entry."""
    return b'{"type":"progress","data":' + data + b"}\n"


class LineTooLong(Exception):
    """A peer sent more than ``max_line`` bytes without a newline; ``lines`` holds the
    complete lines that came before it."""

    def __init__(self, length: int, lines: list[bytes]) -> None:
        super().__init__(f"line of {length} bytes")
        self.lines = lines


class LineBuffer:
    """Splits a byte stream into lines of at most ``max_line`` bytes (``\\r\\n`` tolerated)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buffer = bytearray()  # the start of a line whose newline has not come yet

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return the complete lines. Raises LineTooLong (after which the
        buffer is unusable) when a line, complete or not, exceeds ``max_line``.

        Only the new bytes are searched for newlines, and the lines are cut straight
        out of them: what was held back only starts the first one."""
        lines = data.split(b"\n")
        rest = lines.pop()
        if self._buffer and lines:
            lines[0] = bytes(self._buffer) + lines[0]
            self._buffer.clear()
        for i, line in enumerate(lines):
            if line.endswith(b"\r"):
                line = lines[i] = line[:-1]
            if len(line) > self.max_line:
                raise LineTooLong(len(line), lines[:i])
        self._buffer += rest
        if len(self._buffer) > self.max_line + 1:  # +1: a trailing "\r" still allowed
            raise LineTooLong(len(self._buffer), lines)
        return lines

    @property
    def pending(self) -> int:
        """Bytes of an incomplete line held back."""
        return len(self._buffer)


# --- the session -----------------------------------------------------------------------


class _Malformed:
    """Marker for a line that is not JSON at all."""


_MALFORMED: Final = _Malformed()


class ServerSession:
    """One connection's protocol state, server side. Not thread-safe; no I/O."""

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE,
        rate: float = RATE_PER_SECOND,
        burst: int = RATE_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = _AWAITING_AUTH
        self.session_id: str | None = None
        self.user_id: str | None = None
        self.device: str | None = None
        self._lines = LineBuffer(max_line)
        self._bucket = TokenBucket(rate, burst, clock)
        self._inbox: deque[bytes] = deque()
        self._outbox: list[bytes] = []
        self._oversized = False
        self._eof = False

    # -- bytes in -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the socket. Lines are judged later by :meth:`next_event`."""
        if self.state is _CLOSED or self._oversized or self._eof:
            return
        try:
            self._inbox.extend(self._lines.feed(data))
        except LineTooLong as exc:
            # Lines before the long one are still answered, in order; then error and close.
            self._inbox.extend(exc.lines)
            self._oversized = True

    def receive_eof(self) -> None:
        """The peer will send nothing more; complete lines already received still count."""
        self._eof = True

    @property
    def pending_lines(self) -> int:
        """Complete lines received but not yet turned into events (for backpressure)."""
        return len(self._inbox)

    def next_event(self) -> ClientEvent | None:
        """The next thing the wrapper must act on, or None until more bytes arrive.

        Replies that need no service (bad_request, rate_limited, ...) are queued
        directly; check :attr:`close_expected` after calling this.
        """
        while self._inbox and self.state in (
            _AWAITING_AUTH,
            _AUTHENTICATED,
        ):
            event = self._handle_line(self._inbox.popleft())
            if event is not None:
                return event
        if self._inbox or self.state is _AUTHENTICATING:
            return None
        if self.state is not _CLOSED:
            if self._oversized:
                self._close_with(
                    "bad_request", f"line longer than {self._lines.max_line} bytes; closing"
                )
            elif self._eof:
                self.state = _CLOSED
        return None

    # -- decisions of the wrapper ---------------------------------------------------------

    def accept_auth(self, session_id: str, user_id: str, expires_in: int | None = None) -> None:
        """The token was valid: reply ``auth_ok`` and start accepting requests.
        ``expires_in``: whole seconds left on the token (omitted when it has no expiry)."""
        self._expect(_AUTHENTICATING)
        self.state = _AUTHENTICATED
        self.session_id = session_id
        self.user_id = user_id
        self._send_auth_ok(expires_in)

    def reject_auth(self, message: str) -> None:
        """The token was not valid: reply ``unauthorized`` and close."""
        self._expect(_AUTHENTICATING)
        self._close_with("unauthorized", message)

    def accept_renewal(self, expires_in: int | None) -> None:
        """The renewal token was valid and of the same user: ``auth_ok`` again, same
        session id, with the seconds left on the new token."""
        self._expect(_AUTHENTICATED)
        self._send_auth_ok(expires_in)

    def reject_renewal(self, code: ErrorCode, message: str) -> None:
        """The renewal was refused (``unauthorized`` or ``forbidden``): say so; the
        session keeps its current expiry and stays open."""
        self._expect(_AUTHENTICATED)
        self.send_error(code, message)

    def expire(self) -> None:
        """The session's token ran out without renewal: ``unauthorized`` and close."""
        self._close_with("unauthorized", "access token expired")

    # -- messages out ---------------------------------------------------------------------

    def send_ack(self, message_id: MessageId, progress: Mapping[str, Any]) -> None:
        self._send({"type": "ack", "id": message_id, "progress": progress})

    def send_progress(self, data: Mapping[str, Any]) -> None:
        self._send({"type": "progress", "data": data})

    def send_sync_done(self) -> None:
        self._send({"type": "sync_done"})

    def send_pong(self, server_time: str | None = None) -> None:
        self._send({"type": "pong", "server_time": server_time or utc_timestamp()})

    def send_error(
        self,
        code: ErrorCode,
        message: str,
        *,
        message_id: MessageId | None = None,
        details: Any = None,
        retry_after: float | None = None,
        close: bool = False,
    ) -> None:
        """Queue ``{"type":"error",code,message,…}``; ``close=True`` also ends the session."""
        if self.state is _CLOSED:
            return
        error: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if message_id is not None:
            error["id"] = message_id
        if details is not None:
            error["details"] = details
        if retry_after is not None:
            error["retry_after"] = round(retry_after, 3)
        self._outbox.append(encode(error))
        if close:
            self._close()

    def close(self) -> None:
        """End the session without a message (idle timeout, server-side decision)."""
        self._close()

    def data_to_send(self) -> list[bytes]:
        """Encoded lines queued since the last call, oldest first."""
        out, self._outbox = self._outbox, []
        return out

    @property
    def close_expected(self) -> bool:
        """True once the wrapper should flush :meth:`data_to_send` and close the socket."""
        return self.state is _CLOSED

    # -- internals ------------------------------------------------------------------------

    def _send(self, message: Mapping[str, Any]) -> None:
        if self.state is not _CLOSED:
            self._outbox.append(encode(message))

    def _send_auth_ok(self, expires_in: int | None) -> None:
        reply: dict[str, Any] = {
            "type": "auth_ok",
            "session_id": self.session_id,
            "user_id": self.user_id,
        }
        if expires_in is not None:
            reply["expires_in"] = expires_in
        self._send(reply)

    def _close(self) -> None:
        self.state = _CLOSED
        self._inbox.clear()

    def _close_with(self, code: ErrorCode, message: str) -> None:
        self.send_error(code, message, close=True)

    def _expect(self, state: SessionState) -> None:
        if self.state is not state:
            raise RuntimeError(f"session is {self.state.value}, not {state.value}")

    def _handle_line(self, line: bytes) -> ClientEvent | None:
        if not line or line.isspace():
            return None  # blank lines are keep-alive noise
        message: Any
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            message = _MALFORMED
        if self.state is _AWAITING_AUTH:
            return self._handle_first(message)
        message_id = _message_id(message)
        if not self._bucket.take():
            self.send_error(
                "rate_limited",
                f"more than {self._bucket.rate:g} messages per second",
                message_id=message_id,
                retry_after=self._bucket.retry_after(),
            )
            return None
        if message is _MALFORMED:
            self._bad_request("malformed JSON")
            return None
        if not isinstance(message, dict):
            self._bad_request("a message must be a JSON object")
            return None
        kind = message.get("type")
        try:
            if kind == "progress_update":
                return _parse_progress_update(message_id, message)
            if kind == "sync":
                return _parse_sync(message)
            if kind == "ping":
                return PingRequest()
            if kind == "auth":
                return self._renewal(message)
        except _BadFields as exc:
            self._bad_request(exc.message, message_id=message_id, details=exc.details)
            return None
        if not isinstance(kind, str):
            self._bad_request('a message needs a string "type"')
        else:
            self._bad_request(f"unknown message type {_clip(kind)!r}", message_id=message_id)
        return None

    def _handle_first(self, message: Any) -> ClientEvent | None:
        if message is _MALFORMED or not isinstance(message, dict):
            self._close_with("bad_request", "expected an auth message (a JSON object)")
            return None
        if message.get("type") != "auth":
            self._close_with("unauthorized", "authenticate first: send an auth message")
            return None
        token = message.get("token")
        device = message.get("device")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            self._close_with("unauthorized", "missing or malformed token")
            return None
        if device is not None and (
            not isinstance(device, str)
            or len(device) > MAX_DEVICE_LENGTH
            or not device.isprintable()
        ):
            self._close_with(
                "bad_request", f"device must be printable text of at most {MAX_DEVICE_LENGTH}"
            )
            return None
        self.device = device or None
        self.state = _AUTHENTICATING
        return AuthRequest(token=token, device=self.device)

    def _renewal(self, message: dict[str, Any]) -> RenewRequest | None:
        token = message.get("token")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            # Like any refused renewal: the session keeps its token and stays open.
            self.send_error("unauthorized", "missing or malformed token")
            return None
        return RenewRequest(token=token)

    def _bad_request(
        self, message: str, *, message_id: MessageId | None = None, details: Any = None
    ) -> None:
        self.send_error("bad_request", message, message_id=message_id, details=details)


class _BadFields(Exception):
    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


_MIN_ID: Final = -MAX_VERSION - 1


def _valid_id(value: Any) -> TypeGuard[MessageId]:
    if isinstance(value, str):  # the usual case first
        return 0 < len(value) <= MAX_ID_LENGTH
    return (
        isinstance(value, int) and not isinstance(value, bool) and _MIN_ID <= value <= MAX_VERSION
    )


def _message_id(message: Any) -> MessageId | None:
    """The client's id when it is one we can echo back, else None."""
    if not isinstance(message, dict):
        return None
    value = message.get("id")
    return value if _valid_id(value) else None


def _parse_progress_update(message_id: MessageId | None, message: dict[str, Any]) -> ProgressUpdate:
    """``message_id``: what :func:`_message_id` made of the message's id."""
    if message_id is None:
        raise _BadFields(f'"id" must be a string of 1-{MAX_ID_LENGTH} characters or an integer')
    data = message.get("data")
    if not isinstance(data, dict):
        raise _BadFields('"data" must be an object with manga_id and chapter')
    return _lean_progress(message_id, data) or _schema_progress(message_id, data)


def _schema_progress(message_id: MessageId, data: dict[str, Any]) -> ProgressUpdate:
    try:
        # JSON mode and strict: the same field rules as every door, without coercing
        # "12" or true into numbers.
        update = ProgressIn.model_validate_json(orjson.dumps(data), strict=True)
    except ValidationError as exc:
        details = [
            {
                "field": ".".join(str(p) for p in err["loc"]),
                "message": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise _BadFields("invalid progress_update data", details) from None
    if not math.isfinite(update.chapter):  # belt and braces: the schema already refuses
        raise _BadFields("chapter must be a finite number")
    return ProgressUpdate(
        id=message_id,
        manga_id=update.manga_id,
        chapter=update.chapter,
        status=update.status,
        volume=update.volume,
    )


_PROGRESS_FIELDS: Final = frozenset(ProgressIn.model_fields)
_STATUSES: Final = {status.value: status for status in ReadingStatus}
_MAX_CHAPTER: Final = 100_000
_MAX_VOLUME: Final = 100_000


def _lean_progress(message_id: MessageId, data: dict[str, Any]) -> ProgressUpdate | None:
    """The common well-formed update without the schema (it costs more than the rest
    of the line's handling); None for anything else, which the schema then judges,
    so every error is still the schema's. A test holds the two paths equal."""
    if not _PROGRESS_FIELDS.issuperset(data):
        return None
    manga_id = data.get("manga_id")
    chapter = data.get("chapter")
    volume = data.get("volume")
    status = data.get("status")
    if type(manga_id) is not int or manga_id < 1:
        return None
    if type(chapter) is not float and type(chapter) is not int:
        return None
    if not 0 <= chapter <= _MAX_CHAPTER:
        return None
    if volume is not None and (type(volume) is not int or not 0 <= volume <= _MAX_VOLUME):
        return None
    if status is not None and (type(status) is not str or status not in _STATUSES):
        return None
    # Positional: a named tuple takes them faster than keywords.
    return ProgressUpdate(
        message_id, manga_id, float(chapter), None if status is None else _STATUSES[status], volume
    )


def _parse_sync(message: dict[str, Any]) -> SyncRequest:
    since = message.get("since_version", 0)
    if isinstance(since, bool) or not isinstance(since, int) or not 0 <= since <= MAX_VERSION:
        raise _BadFields('"since_version" must be a non-negative integer')
    return SyncRequest(since_version=since)
