"""Sans-I/O core of the UDP notification door (SPEC "UDP notifications").

JSON datagrams, one message each, at most 8 KiB. This module never touches a socket,
a clock or the database: :class:`NotificationHub` takes datagrams in
(:meth:`~NotificationHub.receive_datagram`) with the time they arrived, queues
datagrams out (:meth:`~NotificationHub.datagrams_to_send`) and hands the I/O
layer what only it can do (:meth:`~NotificationHub.take_events`): verify a token,
write an ACK to storage, load a user's undelivered notifications, drop the bus
feed of a user who is gone. ``server.py`` is the thin asyncio wrapper; the wire
codec (parsing, encoding, trimming) is ``messages.py``.

Inbound datagrams and what they get back:

================================  =================================================
``SUBSCRIBE {token}``             ``SUBSCRIBED {expires_in, nonce}`` (the backlog once
                                  the address has answered), or ``ERROR``; from the
                                  address the user is subscribed at, a renewal:
                                  ``SUBSCRIBED`` only
``PING {nonce}``                  ``PONG`` (``subscribed`` tells whether this address
                                  is a live subscription; it renews it if so)
``UNSUBSCRIBE {nonce}``           ``UNSUBSCRIBED`` (also when nothing was subscribed)
``ACK {id, nonce}``               nothing; ``ERROR UNAUTHORIZED`` if not subscribed
larger than 8 KiB, not JSON, not  ``ERROR BAD_REQUEST`` (never parsed past the size
an object, unknown type, wrong    check; the reply is smaller than the request, so
field types                       it cannot amplify)
================================  =================================================

Every ``ERROR`` draws from one server-wide budget (default 100/s, burst 200):
past it errors are dropped silently, so spoofed garbage cannot turn the server
into a reflector.

Registry: one subscriber per user, holding the address of the latest SUBSCRIBE
(a NAT rebinding or a second device takes the subscription over), and one user
per address (a SUBSCRIBE from an address that belonged to another user removes
that user, so nobody's notifications reach someone else's socket). Any valid
message from a subscribed address renews it; 5 minutes of silence expire it.

Token lifetime: a subscription lasts as long as the access token that opened it.
A SUBSCRIBE with a fresh token of the same user from the same address renews it in
place (new expiry, nothing re-sent); a PING renews liveness, never the token. When
the token runs out the hub sends ``ERROR UNAUTHORIZED "access token expired"`` and
drops the subscription (undelivered notifications stay stored for the next
SUBSCRIBE). Expiry is checked by the timer sweep (a heap of deadlines, no timer per
subscriber) and again before anything is sent to or taken from the subscriber.

Spoofing: a datagram's source address proves nothing, so SUBSCRIBED carries a random
``nonce`` that only the real address sees. Later PING, ACK and UNSUBSCRIBE echo it;
one with a wrong nonce is ignored without a reply. Nothing but SUBSCRIBED goes to a
new address before it has *answered*: a datagram echoing the nonce (a client sends a
PING at once). So a SUBSCRIBE forged with a victim's address (and the forger's own
token) gets the victim one small reply, never a backlog with its re-sends. A client
that never echoes a nonce (written before it existed) keeps working: its first PING
counts as the answer (its notifications start then) and its ACKs and UNSUBSCRIBEs are
taken without one, unprotected; once a subscription has echoed a nonce, it is
required.

Delivery: each NOTIFICATION is re-sent, byte for byte, until ACKed or
``RetryPolicy.max_attempts`` sends were made (exponential backoff). An ACK counts
only for an id this subscription was sent, so a guessed or foreign id changes
nothing. Giving up loses nothing: the row stays undelivered in storage and comes
back with the next subscription (a renewal does not read the backlog again).
"""

from __future__ import annotations

import heapq
import hmac
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

from mangahub.udp.messages import (
    MAX_DATAGRAM,
    Ack,
    Address,
    BadDatagram,
    ClientMessage,
    DoesNotFit,
    Ping,
    Subscribe,
    UdpErrorCode,
    Unsubscribe,
    error_message,
    notification_message,
    parse_datagram,
    pong_message,
    subscribed_message,
    udp_error_code,
    unsubscribed_message,
)

__all__ = [
    "MAX_DATAGRAM",
    "Ack",
    "AckAccepted",
    "Address",
    "BacklogWanted",
    "BadDatagram",
    "ClientMessage",
    "GoneReason",
    "HubEvent",
    "HubLimits",
    "HubStats",
    "NotificationHub",
    "Ping",
    "RetryPolicy",
    "Subscribe",
    "SubscribeRequested",
    "Subscriber",
    "SubscriberGone",
    "TOKEN_EXPIRED",
    "UdpErrorCode",
    "Unsubscribe",
    "notification_message",
    "parse_datagram",
    "udp_error_code",
]

_MIN_COMPACT: Final = 1024
GoneReason: TypeAlias = Literal["unsubscribed", "expired", "replaced", "token_expired"]
TOKEN_EXPIRED: Final = "access token expired"

# --- configuration ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When an unacknowledged NOTIFICATION is sent again.

    The n-th send (n ≥ 1) is followed by a wait of ``initial * factor**(n-1)``,
    capped at ``max_interval``; after ``max_attempts`` sends the hub stops trying.
    Defaults: sends at 0, 2, 6, 14 and 30 s.
    """

    initial: float = 2.0
    factor: float = 2.0
    max_interval: float = 30.0
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.factor < 1 or self.max_interval < self.initial:
            raise ValueError("retry intervals must be positive and non-decreasing")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay(self, sends: int) -> float:
        """Seconds to wait after the ``sends``-th send before the next one."""
        return float(min(self.max_interval, self.initial * self.factor ** (sends - 1)))


@dataclass(frozen=True, slots=True)
class HubLimits:
    """Every table the hub keeps has a bound."""

    max_subscribers: int = 10_000
    max_pending_per_user: int = 64
    """Notifications awaiting an ACK per user; past it the oldest stops being retried."""
    remembered_per_user: int = 256
    """Ids sent to a subscriber that an ACK may still name (≥ max_pending_per_user)."""
    subscriber_ttl: float = 300.0
    """Silence after which a subscriber is dropped (SPEC: 5 min; clients PING every 60 s)."""
    error_rate: float = 100.0
    error_burst: int = 200

    def __post_init__(self) -> None:
        if self.remembered_per_user < self.max_pending_per_user:
            raise ValueError("remembered_per_user must be at least max_pending_per_user")
        if min(self.max_subscribers, self.max_pending_per_user, self.error_burst) < 1:
            raise ValueError("limits must be positive")


# --- events for the I/O layer ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscribeRequested:
    """Verify ``token``; then :meth:`NotificationHub.accept` or :meth:`~NotificationHub.reject`."""

    token: str
    address: Address


@dataclass(frozen=True, slots=True)
class AckAccepted:
    """Mark the notification delivered in storage (it was sent to this user)."""

    user_id: uuid.UUID
    notification_id: int


@dataclass(frozen=True, slots=True)
class BacklogWanted:
    """Load the user's undelivered notifications with id > ``after_id`` (oldest first)
    and hand them to :meth:`NotificationHub.send_notification`, then report with
    :meth:`NotificationHub.backlog_loaded`."""

    user_id: uuid.UUID
    after_id: int


@dataclass(frozen=True, slots=True)
class SubscriberGone:
    """The user has no subscription here any more: stop feeding it."""

    user_id: uuid.UUID
    reason: GoneReason


HubEvent: TypeAlias = SubscribeRequested | AckAccepted | BacklogWanted | SubscriberGone


# --- the hub ---------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Pending:
    payload: bytes
    sends: int
    due: float


@dataclass(slots=True, eq=False)
class Subscriber:
    """One user's live subscription."""

    user_id: uuid.UUID
    address: Address
    last_seen: float
    pending: dict[int, _Pending] = field(default_factory=dict)
    """Sent, not ACKed, still being retried; oldest first."""
    sent: OrderedDict[int, bool] = field(default_factory=OrderedDict)
    """Every id sent in this subscription (recent ones) → ACKed yet."""
    backlog_cursor: int | None = None
    """Where the next page of the backlog starts, when the last page was full."""
    token_expires: float | None = None
    """When the access token of the latest SUBSCRIBE runs out (hub clock); None: never."""
    nonce: str = ""
    """Sent in SUBSCRIBED; later datagrams echo it (see "Spoofing")."""
    answered: bool = False
    """The address has answered SUBSCRIBED: notifications may go to it."""
    echoes: bool = False
    """The client has echoed the nonce once: datagrams without it are refused."""


@dataclass(slots=True)
class HubStats:
    datagrams_in: int = 0
    bad_datagrams: int = 0
    notifications_sent: int = 0
    resent: int = 0
    acked: int = 0
    gave_up: int = 0
    errors_suppressed: int = 0
    spoofed: int = 0
    rejected_full: int = 0
    tokens_expired: int = 0


class NotificationHub:
    """The UDP door's state: subscribers, in-flight notifications and their retries.

    Every method takes ``now`` (seconds on a monotonic clock) instead of reading a
    clock, so tests drive time by hand.
    """

    def __init__(
        self, retry: RetryPolicy | None = None, limits: HubLimits | None = None, now: float = 0.0
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.limits = limits or HubLimits()
        self.stats = HubStats()
        self._subscribers: dict[uuid.UUID, Subscriber] = {}
        self._by_address: dict[Address, uuid.UUID] = {}
        # Least recently heard-from first: expiry pops from the front in O(1).
        self._by_silence: OrderedDict[uuid.UUID, None] = OrderedDict()
        # (due, tiebreak, user, id); entries whose _Pending changed are skipped when
        # popped, and the heap is rebuilt when they outnumber the live ones.
        self._retries: list[tuple[float, int, uuid.UUID, int]] = []
        self._tiebreak = 0
        self._compact_at = _MIN_COMPACT
        # (token expiry, tiebreak, user); stale when the subscriber's expiry moved.
        self._token_deadlines: list[tuple[float, int, uuid.UUID]] = []
        self._token_compact_at = _MIN_COMPACT
        self._outgoing: list[tuple[bytes, Address]] = []
        self._events: list[HubEvent] = []
        self._error_tokens = float(self.limits.error_burst)
        self._error_stamp = now

    # -- outputs ------------------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Datagrams queued since the last call, in order."""
        out, self._outgoing = self._outgoing, []
        return out

    def take_events(self) -> list[HubEvent]:
        """Work for the I/O layer queued since the last call, in order."""
        events, self._events = self._events, []
        return events

    # -- inspection ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscriber(self, user_id: uuid.UUID) -> Subscriber | None:
        return self._subscribers.get(user_id)

    def user_at(self, address: Address) -> uuid.UUID | None:
        return self._by_address.get(address)

    @property
    def pending_count(self) -> int:
        return sum(len(s.pending) for s in self._subscribers.values())

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` next has work (a re-send or an expiry), if ever."""
        deadlines = []
        if self._retries:
            deadlines.append(self._retries[0][0])
        if self._token_deadlines:
            deadlines.append(self._token_deadlines[0][0])
        if self._by_silence:
            oldest = self._subscribers[next(iter(self._by_silence))]
            deadlines.append(oldest.last_seen + self.limits.subscriber_ttl)
        return min(deadlines, default=None)

    # -- inputs -------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, address: Address, now: float) -> None:
        """Handle one datagram: replies go to :meth:`datagrams_to_send`, the rest to
        :meth:`take_events`."""
        self.stats.datagrams_in += 1
        try:
            message = parse_datagram(data)
        except BadDatagram as exc:
            self.stats.bad_datagrams += 1
            self.send_error(address, "BAD_REQUEST", str(exc), now)
            return
        user_id = self._by_address.get(address)
        if user_id is not None:
            sub = self._subscribers[user_id]
            if not self._token_valid(sub, now):
                user_id = None  # the timer had not swept it yet: it is gone now
            elif isinstance(message, Subscribe) or self._genuine(sub, message, now):
                self._touch(sub, now)
            else:
                self.stats.spoofed += 1
                return  # no reply: it would go to whoever the sender pretends to be
        match message:
            case Subscribe(token):
                self._events.append(SubscribeRequested(token, address))
            case Ping():
                self._outgoing.append((pong_message(user_id is not None), address))
            case Unsubscribe():
                if user_id is not None:
                    self._remove(user_id, "unsubscribed")
                self._outgoing.append((unsubscribed_message(), address))
            case Ack(nid):
                if user_id is None:
                    self.send_error(address, "UNAUTHORIZED", "not subscribed; SUBSCRIBE first", now)
                else:
                    self._ack(self._subscribers[user_id], nid)

    def accept(
        self, user_id: uuid.UUID, address: Address, now: float, expires_in: float | None = None
    ) -> bool:
        """The token of a SUBSCRIBE from ``address`` named ``user_id`` and has
        ``expires_in`` seconds left (None: no expiry): (re)subscribe, answer SUBSCRIBED
        and ask for the backlog. From the address ``user_id`` is subscribed at, a
        renewal: only the expiry moves. False (answered ``UNAVAILABLE``) when the
        registry is full."""
        previous = self._by_address.get(address)
        if previous is not None and previous != user_id:
            # Another user's valid token from this address: the address changed hands
            # (port reuse, NAT, a user switch), so the old user's notifications must
            # stop going there. Refusing would keep sending them to the new holder,
            # and protect nothing: an UNSUBSCRIBE from the address needs no token.
            self._remove(previous, "replaced")
        sub = self._subscribers.get(user_id)
        if sub is not None and sub.address == address:
            # Renewal (or a retried SUBSCRIBE whose reply was lost): what is in flight
            # keeps its retry schedule and the backlog is not read again.
            self._touch(sub, now)
            self._set_token_expiry(sub, now, expires_in)
            self._outgoing.append(
                (subscribed_message(user_id, _whole(expires_in), sub.nonce), address)
            )
            return True
        if sub is None:
            if len(self._subscribers) >= self.limits.max_subscribers:
                self._expire_tokens(now)
                self._expire(now)
            if len(self._subscribers) >= self.limits.max_subscribers:
                self.stats.rejected_full += 1
                self.send_error(address, "UNAVAILABLE", "too many subscribers; retry later", now)
                return False
            sub = Subscriber(user_id, address, now)
            self._subscribers[user_id] = sub
        else:
            # A new session of the same user (restarted app, new network, NAT
            # rebinding): what is in flight goes to the new address at once, and
            # everything not pending may be sent again by the backlog.
            self._by_address.pop(sub.address, None)
            sub.address = address
            sub.sent = OrderedDict.fromkeys(sub.pending, False)
            for pending in sub.pending.values():
                pending.sends, pending.due = 0, 0.0  # held until the new address answers
        self._by_address[address] = user_id
        self._touch(sub, now)
        self._set_token_expiry(sub, now, expires_in)
        sub.backlog_cursor = None
        sub.nonce = secrets.token_urlsafe(12)
        sub.answered = sub.echoes = False
        self._outgoing.append((subscribed_message(user_id, _whole(expires_in), sub.nonce), address))
        return True

    def reject(self, address: Address, code: UdpErrorCode, message: str, now: float) -> None:
        """The SUBSCRIBE from ``address`` failed (bad token, backend down)."""
        self.send_error(address, code, message, now)

    def send_notification(self, user_id: uuid.UUID, fields: Mapping[str, Any], now: float) -> bool:
        """Send a stored notification to its user if subscribed here, and keep it for
        re-sending until ACKed. False when not sent: not subscribed, already sent in
        this subscription (the bus and the backlog may both bring it), or unusable."""
        sub = self._subscribers.get(user_id)
        nid = fields.get("id")
        if sub is None or not isinstance(nid, int) or nid in sub.sent:
            return False
        if not self._token_valid(sub, now):
            return False  # stays undelivered in storage for the next subscription
        try:
            payload = notification_message(fields)
        except (DoesNotFit, KeyError, TypeError):
            return False
        if len(sub.pending) >= self.limits.max_pending_per_user:
            # Too much in flight: the oldest stops being retried (it stays
            # undelivered in storage, so the next subscription brings it again).
            del sub.pending[next(iter(sub.pending))]
            self.stats.gave_up += 1
        sub.sent[nid] = False
        while len(sub.sent) > self.limits.remembered_per_user:
            sub.sent.popitem(last=False)
        self.stats.notifications_sent += 1
        pending = _Pending(payload, 0, 0.0)
        sub.pending[nid] = pending
        if sub.answered:  # else held: sent when the address answers
            self._outgoing.append((payload, sub.address))
            self._schedule(sub, nid, pending, now)
        return True

    def backlog_loaded(self, user_id: uuid.UUID, next_after: int | None) -> None:
        """The backlog page asked for by :class:`BacklogWanted` was sent; ``next_after``
        is the last id of a full page (there may be more), None when it was the end."""
        sub = self._subscribers.get(user_id)
        if sub is None:
            return
        sub.backlog_cursor = next_after
        self._maybe_refill(sub)

    def on_timer(self, now: float) -> None:
        """End subscriptions whose token ran out, expire silent subscribers and
        re-send what is due."""
        self._expire_tokens(now)
        self._expire(now)
        while self._retries and self._retries[0][0] <= now:
            due, _, user_id, nid = heapq.heappop(self._retries)
            sub = self._subscribers.get(user_id)
            pending = sub.pending.get(nid) if sub is not None else None
            if sub is None or pending is None or pending.due != due:
                continue  # ACKed, given up, or rescheduled since
            self.stats.resent += 1
            self._outgoing.append((pending.payload, sub.address))
            self._schedule(sub, nid, pending, now)

    def close_all(self, now: float) -> None:
        """Shutting down: tell every subscriber to subscribe again (elsewhere or later)
        and forget them all."""
        for user_id in list(self._subscribers):
            sub = self._subscribers[user_id]
            self._outgoing.append(
                (error_message("UNAVAILABLE", "server shutting down; SUBSCRIBE again"), sub.address)
            )
            self._remove(user_id, "unsubscribed")

    def send_error(self, address: Address, code: UdpErrorCode, message: str, now: float) -> None:
        """Queue an ERROR unless the server-wide error budget is spent."""
        limits = self.limits
        elapsed = max(0.0, now - self._error_stamp)
        self._error_tokens = min(
            limits.error_burst, self._error_tokens + elapsed * limits.error_rate
        )
        self._error_stamp = now
        if self._error_tokens < 1.0:
            self.stats.errors_suppressed += 1
            return
        self._error_tokens -= 1.0
        self._outgoing.append((error_message(code, message), address))

    # -- internals ----------------------------------------------------------------------

    def _set_token_expiry(self, sub: Subscriber, now: float, expires_in: float | None) -> None:
        expires = None if expires_in is None else now + expires_in
        if expires == sub.token_expires:
            return  # a retried SUBSCRIBE with the same token: nothing to book
        sub.token_expires = expires
        if expires is None:
            return
        self._tiebreak += 1
        heapq.heappush(self._token_deadlines, (expires, self._tiebreak, sub.user_id))
        if len(self._token_deadlines) > self._token_compact_at:
            self._token_deadlines = [
                entry
                for entry in self._token_deadlines
                if (live := self._subscribers.get(entry[2])) is not None
                and live.token_expires == entry[0]
            ]
            heapq.heapify(self._token_deadlines)
            self._token_compact_at = max(_MIN_COMPACT, 2 * len(self._token_deadlines))

    def _token_valid(self, sub: Subscriber, now: float) -> bool:
        """True while ``sub``'s token holds; once it has run out, end the subscription
        (telling the client why) and return False."""
        if sub.token_expires is None or sub.token_expires > now:
            return True
        self.stats.tokens_expired += 1
        # Not from the error budget: one per subscription, never a reply to a datagram.
        self._outgoing.append((error_message("UNAUTHORIZED", TOKEN_EXPIRED), sub.address))
        self._remove(sub.user_id, "token_expired")
        return False

    def _expire_tokens(self, now: float) -> None:
        while self._token_deadlines and self._token_deadlines[0][0] <= now:
            expires, _, user_id = heapq.heappop(self._token_deadlines)
            sub = self._subscribers.get(user_id)
            if sub is not None and sub.token_expires == expires:
                self._token_valid(sub, now)

    def _genuine(self, sub: Subscriber, message: ClientMessage, now: float) -> bool:
        """Does ``message`` (from ``sub``'s address) come from the subscribed client?"""
        nonce = getattr(message, "nonce", None)
        if nonce is not None:
            if not hmac.compare_digest(nonce.encode(), sub.nonce.encode()):
                return False
            sub.echoes = True
        elif sub.echoes:
            return False
        elif not isinstance(message, Ping):
            return True  # a client without nonces: taken on trust, as it always was
        if not sub.answered:
            self._answered(sub, now)
        return True

    def _answered(self, sub: Subscriber, now: float) -> None:
        """The address is the client's: send what was held, and read the backlog."""
        sub.answered = True
        for nid, pending in list(sub.pending.items()):
            pending.sends = 0
            self._outgoing.append((pending.payload, sub.address))
            self._schedule(sub, nid, pending, now)
        self._events.append(BacklogWanted(sub.user_id, 0))

    def _touch(self, sub: Subscriber, now: float) -> None:
        sub.last_seen = now
        self._by_silence[sub.user_id] = None
        self._by_silence.move_to_end(sub.user_id)

    def _ack(self, sub: Subscriber, nid: int) -> None:
        if sub.sent.get(nid) is not False:
            return  # never sent to this subscriber, or ACKed already: nothing to write
        sub.sent[nid] = True
        sub.pending.pop(nid, None)
        self.stats.acked += 1
        self._events.append(AckAccepted(sub.user_id, nid))
        self._maybe_refill(sub)

    def _schedule(self, sub: Subscriber, nid: int, pending: _Pending, now: float) -> None:
        """Count a send of ``pending`` just made at ``now`` and book the next, if any."""
        pending.sends += 1
        if pending.sends >= self.retry.max_attempts:
            # Out of attempts. The id stays in ``sent``: a late ACK still counts.
            del sub.pending[nid]
            self.stats.gave_up += 1
            self._maybe_refill(sub)
            return
        pending.due = now + self.retry.delay(pending.sends)
        self._tiebreak += 1
        heapq.heappush(self._retries, (pending.due, self._tiebreak, sub.user_id, nid))
        if len(self._retries) > self._compact_at:
            self._compact()

    def _compact(self) -> None:
        """Drop heap entries of ACKed or rescheduled sends (amortized: the threshold
        doubles with the live size, so each entry is scanned O(1) times)."""
        self._retries = [
            entry
            for entry in self._retries
            if (sub := self._subscribers.get(entry[2])) is not None
            and (pending := sub.pending.get(entry[3])) is not None
            and pending.due == entry[0]
        ]
        heapq.heapify(self._retries)
        self._compact_at = max(_MIN_COMPACT, 2 * len(self._retries))

    def _maybe_refill(self, sub: Subscriber) -> None:
        # The backlog is paged: the next page is asked for once the last one is done.
        if sub.backlog_cursor is not None and not sub.pending:
            self._events.append(BacklogWanted(sub.user_id, sub.backlog_cursor))
            sub.backlog_cursor = None

    def _expire(self, now: float) -> None:
        ttl = self.limits.subscriber_ttl
        while self._by_silence:
            oldest = next(iter(self._by_silence))
            if self._subscribers[oldest].last_seen + ttl > now:
                return
            self._remove(oldest, "expired")

    def _remove(self, user_id: uuid.UUID, reason: GoneReason) -> None:
        sub = self._subscribers.pop(user_id)
        self._by_silence.pop(user_id, None)
        if self._by_address.get(sub.address) == user_id:
            del self._by_address[sub.address]
        self._events.append(SubscriberGone(user_id, reason))


def _whole(expires_in: float | None) -> int | None:
    return None if expires_in is None else int(expires_in)
