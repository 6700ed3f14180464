"""The sans-I/O UDP hub: parsing, replies, registry, ACKs, retries, expiry, limits.
No sockets; time is whatever the test says."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mangahub.udp.protocol import (
    MAX_DATAGRAM,
    Ack,
    AckAccepted,
    BacklogWanted,
    BadDatagram,
    HubLimits,
    NotificationHub,
    Ping,
    RetryPolicy,
    Subscribe,
    SubscribeRequested,
    SubscriberGone,
    Unsubscribe,
    notification_message,
    parse_datagram,
    udp_error_code,
)

A = ("10.0.0.1", 4000)
B = ("10.0.0.2", 5000)


def dumps(message: Any) -> bytes:
    return orjson.dumps(message)


def out(hub: NotificationHub) -> list[tuple[dict[str, Any], tuple[str, int]]]:
    return [(orjson.loads(raw), address) for raw, address in hub.datagrams_to_send()]


def fields(nid: int, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": nid,
        "kind": "new_chapter",
        "manga_id": 7,
        "title": "Berserk",
        "message": "Chapter 12.5 of Berserk is out",
        "data": {"chapter": 12.5, "previous_chapter": 12.0},
        "read": False,
        "created_at": "2024-05-01T10:00:00Z",
    }
    base.update(extra)
    return base


def subscribed_hub(user: uuid.UUID, address: tuple[str, int] = A, **limits: Any) -> NotificationHub:
    hub = NotificationHub(RetryPolicy(), HubLimits(**limits))
    hub.receive_datagram(dumps({"type": "SUBSCRIBE", "token": "t"}), address, 0.0)
    assert hub.take_events() == [SubscribeRequested("t", address)]
    assert hub.accept(user, address, 0.0)
    [(reply, to)] = out(hub)
    assert to == address and reply == {"type": "SUBSCRIBED", "user_id": str(user), **nonce(reply)}
    assert hub.take_events() == []  # nothing before the address answers
    answer(hub, address, 0.0)
    assert hub.take_events() == [BacklogWanted(user, 0)]
    return hub


def nonce(reply: dict[str, Any]) -> dict[str, str]:
    assert isinstance(reply.get("nonce"), str) and len(reply["nonce"]) >= 16
    return {"nonce": reply["nonce"]}


def answer(hub: NotificationHub, address: tuple[str, int], now: float) -> None:
    """The client's first datagram after SUBSCRIBED (a client without nonces: a PING)."""
    hub.receive_datagram(b'{"type":"PING"}', address, now)
    assert [reply for reply, _ in out(hub)][-1:] == [{"type": "PONG", "subscribed": True}]


# --- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"type":"SUBSCRIBE","token":"abc"}', Subscribe("abc")),
        (b'{"type":"subscribe","token":"abc","user_id":"someone-else"}', Subscribe("abc")),
        (b'{"type":"PING"}', Ping()),
        (b'{"type":"UNSUBSCRIBE"}', Unsubscribe()),
        (b'{"type":"ACK","id":42}', Ack(42)),
    ],
)
def test_parse_valid(raw: bytes, expected: object) -> None:
    assert parse_datagram(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "JSON"),
        (b"not json", "JSON"),
        (b"\xff\xfe{}", "JSON"),
        (b"[1,2]", "object"),
        (b'"PING"', "object"),
        (b"{}", "type"),
        (b'{"type":5}', "type"),
        (b'{"type":"HELLO"}', "unknown"),
        (b'{"type":"SUBSCRIBE"}', "token"),
        (b'{"type":"SUBSCRIBE","token":""}', "token"),
        (b'{"type":"SUBSCRIBE","token":12}', "token"),
        (b'{"type":"SUBSCRIBE","user_id":"u"}', "token"),
        (b'{"type":"ACK"}', "id"),
        (b'{"type":"ACK","id":"1"}', "id"),
        (b'{"type":"ACK","id":true}', "id"),
        (b'{"type":"ACK","id":1.5}', "id"),
        (b'{"type":"ACK","id":0}', "range"),
        (b'{"type":"ACK","id":9223372036854775808}', "range"),
        (b'{"type":"ACK","id":99999999999999999999}', "id"),
        (b'{"type":"PING","pad":"' + b"x" * MAX_DATAGRAM + b'"}', "limit"),
    ],
)
def test_parse_invalid(raw: bytes, reason: str) -> None:
    with pytest.raises(BadDatagram, match=reason):
        parse_datagram(raw)


def test_unknown_type_is_echoed_short() -> None:
    with pytest.raises(BadDatagram) as info:
        parse_datagram(dumps({"type": "X" * 5000}))
    assert len(str(info.value)) < 100


def test_bad_datagram_gets_bad_request_and_nothing_else() -> None:
    hub = NotificationHub()
    hub.receive_datagram(b"\x00garbage", A, 0.0)
    [(reply, address)] = out(hub)
    assert address == A
    assert reply["type"] == "ERROR" and reply["code"] == "BAD_REQUEST" and reply["message"]
    assert hub.take_events() == []
    assert hub.stats.bad_datagrams == 1


def test_error_budget_stops_reflection() -> None:
    hub = NotificationHub(limits=HubLimits(error_rate=1.0, error_burst=3))
    for _ in range(5):
        hub.receive_datagram(b"?", A, 0.0)
    assert len(out(hub)) == 3
    assert hub.stats.errors_suppressed == 2
    hub.receive_datagram(b"?", A, 1.0)  # one token back after a second
    assert len(out(hub)) == 1


def test_error_codes_are_upper_case_domain_codes() -> None:
    assert udp_error_code("unauthorized") == "UNAUTHORIZED"
    assert udp_error_code("rate_limited") == "RATE_LIMITED"
    assert udp_error_code("whatever") == "INTERNAL"


# --- registry ----------------------------------------------------------------------------


def test_ping_pong_says_whether_subscribed() -> None:
    user = uuid.uuid4()
    hub = subscribed_hub(user)
    hub.receive_datagram(b'{"type":"PING"}', A, 1.0)
    hub.receive_datagram(b'{"type":"PING"}', B, 1.0)
    assert out(hub) == [
        ({"type": "PONG", "subscribed": True}, A),
        ({"type": "PONG", "subscribed": False}, B),
    ]


def test_rejected_subscribe_gets_error() -> None:
    hub = NotificationHub()
    hub.reject(A, "UNAUTHORIZED", "invalid access token", 0.0)
    assert out(hub) == [
        ({"type": "ERROR", "code": "UNAUTHORIZED", "message": "invalid access token"}, A)
    ]
    assert len(hub) == 0


def test_unsubscribe() -> None:
    user = uuid.uuid4()
    hub = subscribed_hub(user)
    hub.receive_datagram(b'{"type":"UNSUBSCRIBE"}', A, 1.0)
    assert out(hub) == [({"type": "UNSUBSCRIBED"}, A)]
    assert hub.take_events() == [SubscriberGone(user, "unsubscribed")]
    assert len(hub) == 0 and hub.user_at(A) is None
    assert not hub.send_notification(user, fields(1), 1.0)
    # Idempotent: nothing subscribed still answers UNSUBSCRIBED.
    hub.receive_datagram(b'{"type":"UNSUBSCRIBE"}', A, 2.0)
    assert out(hub) == [({"type": "UNSUBSCRIBED"}, A)]
    assert hub.take_events() == []


def test_expiry_after_silence_and_ping_renews() -> None:
    quiet, chatty = uuid.uuid4(), uuid.uuid4()
    hub = subscribed_hub(quiet, A, subscriber_ttl=300)
    hub.accept(chatty, B, 0.0)
    answer(hub, B, 0.0)
    hub.take_events()
    hub.datagrams_to_send()
    assert hub.next_deadline() == 300
    hub.receive_datagram(b'{"type":"PING"}', B, 200.0)
    hub.on_timer(299.9)
    assert hub.take_events() == []
    hub.on_timer(300.0)
    assert hub.take_events() == [SubscriberGone(quiet, "expired")]
    assert hub.next_deadline() == 500
    hub.on_timer(499.0)
    assert hub.subscriber(chatty) is not None
    hub.on_timer(500.0)
    assert hub.take_events() == [SubscriberGone(chatty, "expired")]
    assert hub.next_deadline() is None


def test_resubscribe_from_new_address_takes_over() -> None:
    """NAT rebinding or a second device: the latest SUBSCRIBE's address wins, and what
    is in flight is re-sent there with a fresh retry budget once the new address has
    answered."""
    user = uuid.uuid4()
    hub = subscribed_hub(user, A)
    assert hub.send_notification(user, fields(1), 0.0)
    out(hub)
    assert hub.accept(user, B, 1.0)
    assert [(m["type"], address) for m, address in out(hub)] == [("SUBSCRIBED", B)]
    assert hub.user_at(A) is None and hub.user_at(B) == user
    assert hub.take_events() == []
    hub.receive_datagram(b'{"type":"PING"}', B, 1.0)
    sent = out(hub)
    assert [m["type"] for m, _ in sent] == ["NOTIFICATION", "PONG"]
    assert all(address == B for _, address in sent)
    assert hub.take_events() == [BacklogWanted(user, 0)]
    hub.on_timer(3.0)  # first retry after 2 s, to the new address
    assert [(m["id"], address) for m, address in out(hub)] == [(1, B)]
    # An ACK from the old address counts for nothing now.
    hub.receive_datagram(b'{"type":"ACK","id":1}', A, 3.5)
    assert out(hub)[0][0]["code"] == "UNAUTHORIZED"


def test_address_taken_over_by_another_user() -> None:
    """Nobody's notifications may reach someone else's socket."""
    first, second = uuid.uuid4(), uuid.uuid4()
    hub = subscribed_hub(first, A)
    assert hub.accept(second, A, 1.0)
    assert hub.take_events() == [SubscriberGone(first, "replaced")]
    answer(hub, A, 1.0)
    assert hub.take_events() == [BacklogWanted(second, 0)]
    assert not hub.send_notification(first, fields(1), 1.0)


def test_registry_is_bounded() -> None:
    hub = NotificationHub(limits=HubLimits(max_subscribers=2, subscriber_ttl=10))
    assert hub.accept(uuid.uuid4(), ("h", 1), 0.0)
    assert hub.accept(uuid.uuid4(), ("h", 2), 5.0)
    out(hub)
    assert not hub.accept(uuid.uuid4(), ("h", 3), 6.0)
    assert out(hub) == [
        (
            {
                "type": "ERROR",
                "code": "UNAVAILABLE",
                "message": "too many subscribers; retry later",
            },
            ("h", 3),
        )
    ]
    # Once the first has been silent for the TTL, its place is free.
    assert hub.accept(uuid.uuid4(), ("h", 3), 10.0)
    assert len(hub) == 2


# --- delivery ----------------------------------------------------------------------------


def test_ack_stops_resending_and_is_reported_once() -> None:
    user = uuid.uuid4()
    hub = subscribed_hub(user)
    assert hub.send_notification(user, fields(5), 0.0)
    [(message, address)] = out(hub)
    assert (message["type"], message["id"], address) == ("NOTIFICATION", 5, A)
    hub.receive_datagram(b'{"type":"ACK","id":5}', A, 0.5)
    hub.receive_datagram(b'{"type":"ACK","id":5}', A, 0.6)
    assert hub.take_events() == [AckAccepted(user, 5)]
    assert out(hub) == []  # an ACK gets no reply
    hub.on_timer(100.0)
    assert [m for m, _ in out(hub) if m["type"] == "NOTIFICATION"] == []


def test_ack_of_an_id_never_sent_here_changes_nothing() -> None:
    user = uuid.uuid4()
    hub = subscribed_hub(user)
    hub.receive_datagram(b'{"type":"ACK","id":777}', A, 0.5)
    assert hub.take_events() == [] and out(hub) == []


def test_ack_before_subscribe_is_unauthorized() -> None:
    hub = NotificationHub()
    hub.receive_datagram(b'{"type":"ACK","id":1}', A, 0.0)
    [(reply, _)] = out(hub)
    assert reply["code"] == "UNAUTHORIZED"


def test_same_notification_twice_is_sent_once() -> None:
    """The bus and the backlog may both bring a row."""
    user = uuid.uuid4()
    hub = subscribed_hub(user)
    assert hub.send_notification(user, fields(1), 0.0)
    assert not hub.send_notification(user, fields(1), 0.1)
    assert len(out(hub)) == 1


def test_retry_schedule_backs_off_and_gives_up() -> None:
    user = uuid.uuid4()
    hub = subscribed_hub(user)
    hub.send_notification(user, fields(1), 0.0)
    first = hub.datagrams_to_send()
    sends = [0.0]
    t = 0.0
    while (deadline := hub.next_deadline()) is not None and deadline < 200:
        t = deadline
        hub.on_timer(t)
        copies = hub.datagrams_to_send()
        if copies:
            assert copies == first  # byte for byte: a client dedupes by id
            sends.append(t)
    assert sends == [0.0, 2.0, 6.0, 14.0, 30.0]
    assert hub.stats.gave_up == 1 and hub.stats.resent == 4
    # A late ACK still counts: the client did get it.
    hub.receive_datagram(b'{"type":"ACK","id":1}', A, 40.0)
    assert hub.take_events() == [AckAccepted(user, 1)]


def test_retry_policy() -> None:
    policy = RetryPolicy(initial=0.5, factor=3, max_interval=5, max_attempts=4)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.5, 5]
    with pytest.raises(ValueError):
        RetryPolicy(initial=0)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        HubLimits(max_pending_per_user=10, remembered_per_user=5)


def test_pending_per_user_is_bounded() -> None:
    user = uuid.uuid4()
    hub = subscribed_hub(user, max_pending_per_user=3, remembered_per_user=3)
    for nid in range(1, 5):
        assert hub.send_notification(user, fields(nid), 0.0)
    sub = hub.subscriber(user)
    assert sub is not None and list(sub.pending) == [2, 3, 4]
    assert len(sub.sent) == 3
    out(hub)
    hub.on_timer(2.0)
    assert sorted(m["id"] for m, _ in out(hub)) == [2, 3, 4]


def test_backlog_pages_follow_once_the_last_is_done() -> None:
    user = uuid.uuid4()
    hub = subscribed_hub(user)
    hub.send_notification(user, fields(1), 0.0)
    hub.send_notification(user, fields(2), 0.0)
    hub.backlog_loaded(user, 2)  # a full page: there may be more
    assert hub.take_events() == []
    hub.receive_datagram(b'{"type":"ACK","id":1}', A, 0.1)
    assert hub.take_events() == [AckAccepted(user, 1)]
    hub.receive_datagram(b'{"type":"ACK","id":2}', A, 0.2)
    assert hub.take_events() == [AckAccepted(user, 2), BacklogWanted(user, 2)]


def test_resubscribe_allows_sending_again_what_was_given_up() -> None:
    """A new subscription (here: after UNSUBSCRIBE) may send again what was given up;
    a renewal from the same address does not (see test_renewal_*)."""
    user = uuid.uuid4()
    hub = NotificationHub(RetryPolicy(max_attempts=1))
    hub.accept(user, A, 0.0)
    assert hub.send_notification(user, fields(1), 0.0)
    assert not hub.send_notification(user, fields(1), 1.0)
    hub.accept(user, A, 1.5)  # a renewal: the subscription remembers what it sent
    assert not hub.send_notification(user, fields(1), 1.5)
    hub.receive_datagram(b'{"type":"UNSUBSCRIBE"}', A, 1.8)
    hub.accept(user, A, 2.0)
    assert hub.send_notification(user, fields(1), 2.0)


def test_close_all_says_goodbye() -> None:
    user = uuid.uuid4()
    hub = subscribed_hub(user)
    hub.close_all(1.0)
    [(reply, address)] = out(hub)
    assert address == A and reply["code"] == "UNAVAILABLE"
    assert hub.take_events() == [SubscriberGone(user, "unsubscribed")]


# --- token lifetime ----------------------------------------------------------------------

EXPIRED = {"type": "ERROR", "code": "UNAUTHORIZED", "message": "access token expired"}


def test_subscribed_carries_whole_seconds_left_on_the_token() -> None:
    user = uuid.uuid4()
    hub = NotificationHub()
    assert hub.accept(user, A, 10.0, expires_in=59.7)
    [(reply, _)] = out(hub)
    assert reply == {"type": "SUBSCRIBED", "user_id": str(user), "expires_in": 59, **nonce(reply)}
    assert hub.next_deadline() == pytest.approx(69.7)  # before the 300 s of silence


def test_subscription_ends_with_its_token_and_ping_does_not_renew_it() -> None:
    user = uuid.uuid4()
    hub = NotificationHub()
    hub.accept(user, A, 0.0, expires_in=30.0)
    answer(hub, A, 0.0)
    hub.take_events()
    out(hub)
    hub.receive_datagram(b'{"type":"PING"}', A, 29.0)
    assert out(hub) == [({"type": "PONG", "subscribed": True}, A)]
    assert hub.next_deadline() == 30.0  # liveness moved, the token did not
    hub.on_timer(29.9)
    assert len(hub) == 1
    hub.on_timer(30.0)
    assert out(hub) == [(EXPIRED, A)]
    assert hub.take_events() == [SubscriberGone(user, "token_expired")]
    assert len(hub) == 0 and hub.user_at(A) is None and hub.stats.tokens_expired == 1
    assert hub.next_deadline() is None
    hub.receive_datagram(b'{"type":"PING"}', A, 31.0)
    assert out(hub) == [({"type": "PONG", "subscribed": False}, A)]


def test_expired_token_is_caught_before_sending_even_if_the_timer_is_late() -> None:
    user = uuid.uuid4()
    hub = NotificationHub()
    hub.accept(user, A, 0.0, expires_in=5.0)
    hub.take_events()
    out(hub)
    assert not hub.send_notification(user, fields(1), 5.5)
    assert out(hub) == [(EXPIRED, A)]
    assert hub.take_events() == [SubscriberGone(user, "token_expired")]
    # ...and before taking anything from the address: an ACK is no longer accepted.
    other = uuid.uuid4()
    hub.accept(other, B, 0.0, expires_in=5.0)
    assert hub.send_notification(other, fields(2), 1.0)
    out(hub)
    hub.take_events()
    hub.receive_datagram(b'{"type":"ACK","id":2}', B, 6.0)
    assert [m for m, _ in out(hub)] == [
        EXPIRED,
        {"type": "ERROR", "code": "UNAUTHORIZED", "message": "not subscribed; SUBSCRIBE first"},
    ]
    assert hub.take_events() == [SubscriberGone(other, "token_expired")]


def test_renewal_moves_the_expiry_and_sends_nothing_again() -> None:
    user = uuid.uuid4()
    hub = NotificationHub()
    hub.accept(user, A, 0.0, expires_in=30.0)
    [(first, _)] = out(hub)
    answer(hub, A, 0.0)
    assert hub.take_events() == [BacklogWanted(user, 0)]
    assert hub.send_notification(user, fields(1), 0.0)
    out(hub)
    hub.receive_datagram(dumps({"type": "SUBSCRIBE", "token": "fresh"}), A, 1.0)
    assert hub.take_events() == [SubscribeRequested("fresh", A)]
    assert hub.accept(user, A, 1.0, expires_in=60.0)
    # Only the confirmation (same nonce): no backlog, what is in flight keeps its schedule.
    assert out(hub) == [
        ({"type": "SUBSCRIBED", "user_id": str(user), "expires_in": 60, **nonce(first)}, A)
    ]
    assert hub.take_events() == []
    hub.on_timer(2.0)  # the first re-send, 2 s after the first send
    assert [(m["id"], address) for m, address in out(hub)] == [(1, A)]
    hub.receive_datagram(b'{"type":"ACK","id":1}', A, 2.5)
    assert hub.take_events() == [AckAccepted(user, 1)]
    hub.on_timer(30.0)  # the first token's expiry: nothing happens
    assert out(hub) == [] and hub.take_events() == [] and len(hub) == 1
    hub.receive_datagram(b'{"type":"PING"}', A, 40.0)
    assert out(hub) == [({"type": "PONG", "subscribed": True}, A)]
    hub.on_timer(61.0)  # the renewed token's expiry
    assert out(hub) == [(EXPIRED, A)]
    assert hub.take_events() == [SubscriberGone(user, "token_expired")]


def test_another_users_token_from_the_address_takes_it_over_with_its_own_expiry() -> None:
    """UDP has no connection: an address is not a session. A valid token of another
    user from it means the address changed hands; the old user's notifications stop
    going there (see ``NotificationHub.accept``)."""
    alice, bob = uuid.uuid4(), uuid.uuid4()
    hub = NotificationHub()
    hub.accept(alice, A, 0.0, expires_in=10.0)
    hub.take_events()
    out(hub)
    hub.accept(bob, A, 1.0, expires_in=100.0)
    assert hub.take_events() == [SubscriberGone(alice, "replaced")]
    [(reply, _)] = out(hub)
    assert reply == {"type": "SUBSCRIBED", "user_id": str(bob), "expires_in": 100, **nonce(reply)}
    answer(hub, A, 1.0)
    assert hub.take_events() == [BacklogWanted(bob, 0)]
    assert not hub.send_notification(alice, fields(1), 2.0)
    hub.on_timer(11.0)  # alice's token deadline: nobody there any more to expire
    assert out(hub) == [] and hub.user_at(A) == bob


def test_expired_subscription_comes_back_with_its_backlog() -> None:
    user = uuid.uuid4()
    hub = NotificationHub()
    hub.accept(user, A, 0.0, expires_in=5.0)
    assert hub.send_notification(user, fields(1), 0.0)
    hub.on_timer(5.0)
    out(hub)
    hub.take_events()
    hub.accept(user, A, 6.0, expires_in=900.0)
    answer(hub, A, 6.0)
    assert hub.take_events() == [BacklogWanted(user, 0)]
    assert hub.send_notification(user, fields(1), 6.0)  # a new subscription: sent again


def test_token_deadlines_stay_bounded_under_many_renewals() -> None:
    user = uuid.uuid4()
    hub = NotificationHub(limits=HubLimits(subscriber_ttl=10_000))
    for n in range(5000):
        hub.accept(user, A, float(n), expires_in=900.0)
    out(hub)
    assert len(hub._token_deadlines) <= 2048
    hub.on_timer(4999.0 + 899.0)
    assert len(hub) == 1
    hub.on_timer(4999.0 + 900.0)
    assert out(hub) == [(EXPIRED, A)]


# --- NOTIFICATION messages ---------------------------------------------------------------


def test_notification_message_fields() -> None:
    message = orjson.loads(notification_message(fields(9)))
    assert list(message) == [
        "type",
        "id",
        "kind",
        "manga_id",
        "title",
        "chapter",
        "previous_chapter",
        "message",
        "created_at",
        "data",
    ]
    assert message["chapter"] == 12.5 and message["previous_chapter"] == 12.0
    assert "truncated" not in message
    other = orjson.loads(notification_message(fields(9, kind="new_manga", data={})))
    assert "chapter" not in other


def test_long_message_is_trimmed_never_split() -> None:
    text = "A long story. " * 2000
    raw = notification_message(fields(1, message=text))
    assert len(raw) <= MAX_DATAGRAM
    assert len(raw) > MAX_DATAGRAM - 10  # as much as fits
    message = orjson.loads(raw)
    assert message["truncated"] is True
    assert message["message"].endswith("…")
    assert text.startswith(message["message"][:-1])
    assert message["data"] == {"chapter": 12.5, "previous_chapter": 12.0}


def test_huge_data_is_dropped_before_the_message() -> None:
    raw = notification_message(fields(1, kind="manga_update", data={"changes": ["x" * 20_000]}))
    message = orjson.loads(raw)
    assert len(raw) <= MAX_DATAGRAM
    assert message["data"] == {} and message["message"] == fields(1)["message"]


@settings(max_examples=150, deadline=None)
@given(
    message=st.text(max_size=12_000),
    title=st.text(min_size=1, max_size=500),
    data=st.dictionaries(st.text(max_size=20), st.text(max_size=3000), max_size=4),
    limit=st.integers(min_value=1024, max_value=MAX_DATAGRAM),
)
def test_every_notification_fits(
    message: str, title: str, data: dict[str, str], limit: int
) -> None:
    raw = notification_message(fields(1, message=message, title=title, data=data), limit)
    assert len(raw) <= limit
    decoded = orjson.loads(raw)
    assert decoded["id"] == 1
    if decoded.get("truncated"):
        kept = decoded["message"].removesuffix("…")
        assert message.startswith(kept)
    else:
        assert decoded["message"] == message and decoded["title"] == title


# --- spoofed source addresses ------------------------------------------------------------


def echoing_hub(user: uuid.UUID, address: tuple[str, int] = A) -> tuple[NotificationHub, str]:
    """A subscription whose client echoes the nonce (as MangaHub's own clients do)."""
    hub = NotificationHub()
    assert hub.accept(user, address, 0.0)
    [(reply, _)] = out(hub)
    hub.receive_datagram(dumps({"type": "PING", "nonce": reply["nonce"]}), address, 0.0)
    assert out(hub) == [({"type": "PONG", "subscribed": True}, address)]
    assert hub.take_events() == [BacklogWanted(user, 0)]
    return hub, reply["nonce"]


def test_a_forged_subscribe_gets_the_victim_one_reply_and_no_backlog() -> None:
    """SUBSCRIBE with the forger's own token and the victim's source address: the
    victim's socket gets SUBSCRIBED, nothing else, however long it stays silent."""
    forger = uuid.uuid4()
    hub = NotificationHub()
    assert hub.accept(forger, A, 0.0)
    assert [m["type"] for m, _ in out(hub)] == ["SUBSCRIBED"]
    assert hub.take_events() == []  # the backlog is not even read
    for nid in range(1, 11):
        assert hub.send_notification(forger, fields(nid), 0.0)  # live ones are held too
    for now in (2.0, 6.0, 14.0, 30.0, 299.0):
        hub.on_timer(now)
    assert out(hub) == []
    hub.on_timer(300.0)
    assert hub.take_events() == [SubscriberGone(forger, "expired")]


def test_held_notifications_go_out_once_the_address_answers_with_the_nonce() -> None:
    user = uuid.uuid4()
    hub = NotificationHub()
    assert hub.accept(user, A, 0.0)
    [(reply, _)] = out(hub)
    assert hub.send_notification(user, fields(1), 0.0)
    assert out(hub) == []
    hub.receive_datagram(dumps({"type": "PING", "nonce": "not-the-nonce"}), A, 1.0)
    assert out(hub) == [] and hub.stats.spoofed == 1  # a wrong nonce gets no reply
    hub.receive_datagram(dumps({"type": "PING", "nonce": reply["nonce"]}), A, 1.0)
    assert [m["type"] for m, _ in out(hub)] == ["NOTIFICATION", "PONG"]
    assert hub.take_events() == [BacklogWanted(user, 0)]


def test_acks_and_unsubscribes_without_the_nonce_are_ignored() -> None:
    """Notification ids are sequential, so a forger can guess them: an ACK must carry
    the nonce only the subscribed address has seen."""
    user = uuid.uuid4()
    hub, secret = echoing_hub(user)
    assert hub.send_notification(user, fields(1), 1.0)
    out(hub)
    for forged in ({"type": "ACK", "id": 1}, {"type": "ACK", "id": 1, "nonce": "guess"}):
        hub.receive_datagram(dumps(forged), A, 1.5)
    for forged in ({"type": "UNSUBSCRIBE"}, {"type": "UNSUBSCRIBE", "nonce": "guess"}):
        hub.receive_datagram(dumps(forged), A, 1.5)
    assert out(hub) == [] and hub.take_events() == [] and hub.stats.spoofed == 4
    hub.on_timer(3.0)  # still unacknowledged: re-sent
    assert [m["id"] for m, _ in out(hub)] == [1]
    hub.receive_datagram(dumps({"type": "ACK", "id": 1, "nonce": secret}), A, 3.5)
    assert hub.take_events() == [AckAccepted(user, 1)]
    hub.receive_datagram(dumps({"type": "UNSUBSCRIBE", "nonce": secret}), A, 4.0)
    assert out(hub) == [({"type": "UNSUBSCRIBED"}, A)]
    assert hub.take_events() == [SubscriberGone(user, "unsubscribed")]


def test_a_new_subscription_gets_a_new_nonce() -> None:
    user = uuid.uuid4()
    hub, first = echoing_hub(user, A)
    assert hub.accept(user, B, 1.0)
    [(reply, _)] = out(hub)
    assert reply["nonce"] != first
    hub.receive_datagram(dumps({"type": "PING", "nonce": first}), B, 1.0)
    assert out(hub) == []  # the old nonce proves nothing about the new address
