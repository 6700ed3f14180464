"""The sans-I/O TCP session, fed bytes: no sockets, no event loop."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mangahub.domain.enums import ReadingStatus
from mangahub.domain.errors import ErrorCode
from mangahub.ratelimit import TokenBucket
from mangahub.tcp.protocol import (
    MAX_LINE,
    AuthRequest,
    ClientEvent,
    LineBuffer,
    LineTooLong,
    PingRequest,
    ProgressUpdate,
    RenewRequest,
    ServerSession,
    SessionState,
    SyncRequest,
    _lean_progress,
    _schema_progress,
    ack_line,
    encode,
    progress_line,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def line(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message) + b"\n"


AUTH = line({"type": "auth", "token": "tok", "device": "laptop"})


def sent(session: ServerSession) -> list[dict[str, Any]]:
    return [orjson.loads(raw) for raw in session.data_to_send()]


def drain(session: ServerSession) -> list[ClientEvent]:
    events = []
    while (event := session.next_event()) is not None:
        events.append(event)
    return events


def authed(clock: FakeClock | None = None) -> ServerSession:
    session = ServerSession(clock=clock or FakeClock())
    session.receive_data(AUTH)
    assert session.next_event() == AuthRequest(token="tok", device="laptop")
    session.accept_auth("sess-1", "user-1")
    assert sent(session) == [{"type": "auth_ok", "session_id": "sess-1", "user_id": "user-1"}]
    return session


def update(message_id: Any = "m1", **data: Any) -> bytes:
    return line({"type": "progress_update", "id": message_id, "data": data})


# --- authentication -------------------------------------------------------------------


def test_auth_then_requests_in_the_same_chunk_wait_for_the_verdict() -> None:
    session = ServerSession()
    session.receive_data(AUTH + line({"type": "ping"}))
    assert session.next_event() == AuthRequest(token="tok", device="laptop")
    assert session.state is SessionState.AUTHENTICATING
    assert session.next_event() is None  # the ping waits until the token is judged
    session.accept_auth("s", "u")
    assert session.next_event() == PingRequest()
    assert session.state is SessionState.AUTHENTICATED


def test_bad_token_is_unauthorized_and_closes() -> None:
    session = ServerSession()
    session.receive_data(AUTH + line({"type": "ping"}))
    session.next_event()
    session.reject_auth("invalid access token")
    assert sent(session) == [
        {"type": "error", "code": "unauthorized", "message": "invalid access token"}
    ]
    assert session.close_expected
    assert session.next_event() is None
    session.receive_data(line({"type": "ping"}))
    assert session.next_event() is None and session.data_to_send() == []


@pytest.mark.parametrize(
    ("first", "code"),
    [
        (line({"type": "ping"}), "unauthorized"),
        (update(manga_id=1, chapter=2), "unauthorized"),
        (line({"type": "auth"}), "unauthorized"),
        (line({"type": "auth", "token": 42}), "unauthorized"),
        (line({"type": "auth", "token": ""}), "unauthorized"),
        (b"{not json\n", "bad_request"),
        (b"[1, 2]\n", "bad_request"),
        (line({"type": "auth", "token": "t", "device": "x" * 101}), "bad_request"),
        (line({"type": "auth", "token": "t", "device": "bad\x00device"}), "bad_request"),
    ],
)
def test_anything_but_a_good_auth_first_is_an_error_and_closes(first: bytes, code: str) -> None:
    session = ServerSession()
    session.receive_data(first + AUTH)
    assert session.next_event() is None
    [error] = sent(session)
    assert error["type"] == "error" and error["code"] == code and error["message"]
    assert session.close_expected


def test_auth_without_device_and_expires_in_when_given() -> None:
    session = ServerSession()
    session.receive_data(line({"type": "auth", "token": "tok"}))
    assert session.next_event() == AuthRequest(token="tok", device=None)
    session.accept_auth("s", "u", 897)
    assert sent(session) == [
        {"type": "auth_ok", "session_id": "s", "user_id": "u", "expires_in": 897}
    ]


# --- session lifetime -------------------------------------------------------------------


def test_second_auth_is_a_renewal_answered_in_order_with_the_same_session() -> None:
    session = authed()
    session.receive_data(
        line({"type": "ping"}) + line({"type": "auth", "token": "fresh"}) + line({"type": "ping"})
    )
    assert session.next_event() == PingRequest()
    assert session.next_event() == RenewRequest(token="fresh")
    assert session.state is SessionState.AUTHENTICATED  # requests go on meanwhile
    session.accept_renewal(840)
    assert session.next_event() == PingRequest()
    assert sent(session) == [
        {"type": "auth_ok", "session_id": "sess-1", "user_id": "user-1", "expires_in": 840}
    ]
    assert not session.close_expected


@pytest.mark.parametrize(
    ("code", "message"),
    [("unauthorized", "renewal refused: invalid access token"), ("forbidden", "other user")],
)
def test_a_refused_renewal_is_an_error_and_the_session_stays_open(
    code: ErrorCode, message: str
) -> None:
    session = authed()
    session.receive_data(line({"type": "auth", "token": "x"}) + line({"type": "ping"}))
    assert session.next_event() == RenewRequest(token="x")
    session.reject_renewal(code, message)
    assert sent(session) == [{"type": "error", "code": code, "message": message}]
    assert session.next_event() == PingRequest()
    assert session.state is SessionState.AUTHENTICATED


@pytest.mark.parametrize("token", [None, 42, "", "t" * 9000])
def test_a_renewal_without_a_usable_token_is_unauthorized_and_stays_open(token: Any) -> None:
    session = authed()
    session.receive_data(line({"type": "auth", "token": token}) + line({"type": "ping"}))
    assert session.next_event() == PingRequest()
    [error] = sent(session)
    assert error["code"] == "unauthorized" and "token" in error["message"]
    assert not session.close_expected


def test_expire_says_why_and_closes() -> None:
    session = authed()
    session.receive_data(line({"type": "ping"}))
    session.expire()
    assert sent(session) == [
        {"type": "error", "code": "unauthorized", "message": "access token expired"}
    ]
    assert session.close_expected
    assert session.next_event() is None  # the queued ping is never handled


def test_renewal_decisions_are_only_valid_once_authenticated() -> None:
    session = ServerSession()
    with pytest.raises(RuntimeError):
        session.accept_renewal(10)
    session.receive_data(AUTH)
    session.next_event()
    with pytest.raises(RuntimeError):
        session.reject_renewal("forbidden", "no")


def test_accept_is_only_valid_while_authenticating() -> None:
    with pytest.raises(RuntimeError):
        ServerSession().accept_auth("s", "u")


# --- requests ----------------------------------------------------------------------------


def test_progress_update_sync_and_ping_become_typed_events() -> None:
    session = authed()
    session.receive_data(
        update("a1", manga_id=7, chapter=12.5, status="completed")
        + update(99, manga_id=7, chapter=3)
        + update("v", manga_id=7, chapter=4, volume=2)
        + line({"type": "sync", "since_version": 41})
        + line({"type": "sync"})
        + line({"type": "ping", "extra": "ignored"})
    )
    assert drain(session) == [
        ProgressUpdate(id="a1", manga_id=7, chapter=12.5, status=ReadingStatus.COMPLETED),
        # No status: the entry keeps its own.
        ProgressUpdate(id=99, manga_id=7, chapter=3.0, status=None),
        ProgressUpdate(id="v", manga_id=7, chapter=4.0, volume=2),
        SyncRequest(since_version=41),
        SyncRequest(since_version=0),
        PingRequest(),
    ]
    assert session.data_to_send() == []


@pytest.mark.parametrize(
    "raw",
    [
        b"{oops\n",
        b"\xff\xfe\n",  # not UTF-8
        b'"just a string"\n',
        b"[]\n",
        line({"no": "type"}),
        line({"type": 5}),
        line({"type": "launch_missiles"}),
        line({"type": "progress_update", "data": {"manga_id": 1, "chapter": 1}}),  # no id
        line({"type": "progress_update", "id": True, "data": {"manga_id": 1, "chapter": 1}}),
        line({"type": "progress_update", "id": "x" * 129, "data": {"manga_id": 1, "chapter": 1}}),
        line({"type": "progress_update", "id": "m", "data": [1, 2]}),
        update(manga_id="1", chapter=1),
        update(manga_id=True, chapter=1),
        update(manga_id=0, chapter=1),
        update(manga_id=1.5, chapter=1),
        update(manga_id=1, chapter=-1),
        update(manga_id=1, chapter="12"),
        update(manga_id=1, chapter=1e9),
        update(manga_id=1),
        update(manga_id=1, chapter=1, status="binging"),
        update(manga_id=1, chapter=1, volume=-1),
        update(manga_id=1, chapter=1, volume=1.5),
        update(manga_id=1, chapter=1, volume="2"),
        line({"type": "sync", "since_version": -1}),
        line({"type": "sync", "since_version": "3"}),
        line({"type": "sync", "since_version": 1.5}),
        line({"type": "sync", "since_version": 2**63}),
    ],
)
def test_bad_messages_after_auth_are_bad_requests_and_the_session_stays_open(raw: bytes) -> None:
    session = authed()
    session.receive_data(raw + line({"type": "ping"}))
    assert session.next_event() == PingRequest()  # the bad line was answered and skipped
    [error] = sent(session)
    assert error["type"] == "error" and error["code"] == "bad_request"
    assert isinstance(error["message"], str) and error["message"]
    assert not session.close_expected


def test_bad_fields_echo_the_message_id_and_name_the_field() -> None:
    session = authed()
    session.receive_data(update("m-7", manga_id=1, chapter=-3))
    assert session.next_event() is None
    [error] = sent(session)
    assert error["id"] == "m-7"
    assert [d["field"] for d in error["details"]] == ["chapter"]


def test_unknown_type_names_it() -> None:
    session = authed()
    session.receive_data(line({"type": "teleport", "id": "q"}))
    session.next_event()
    [error] = sent(session)
    assert error == {
        "type": "error",
        "code": "bad_request",
        "message": "unknown message type 'teleport'",
        "id": "q",
    }


# --- framing -------------------------------------------------------------------------------


def test_lines_split_anywhere_and_crlf_and_blank_lines_are_fine() -> None:
    session = authed()
    stream = b"\r\n\n" + update("\u00e9\u6f2b", manga_id=1, chapter=1).replace(b"\n", b"\r\n")
    for i in range(len(stream)):
        session.receive_data(stream[i : i + 1])
    [event] = drain(session)
    assert isinstance(event, ProgressUpdate) and event.id == "é漫"
    assert session.data_to_send() == []


@given(
    st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=40),
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=200),
)
def test_chunking_never_changes_the_events(ids: list[int], cuts: list[int]) -> None:
    stream = b"".join(update(i, manga_id=i, chapter=i / 2) for i in ids)
    session = authed()
    pos = 0
    events: list[ClientEvent] = []
    for cut in cuts * (len(stream) // max(1, sum(cuts)) + 1):
        if pos >= len(stream):
            break
        session.receive_data(stream[pos : pos + cut])
        pos += cut
        events += drain(session)
    assert [e.id for e in events if isinstance(e, ProgressUpdate)] == ids


def test_a_line_of_exactly_64_kib_is_accepted() -> None:
    session = authed()
    head = b'{"type":"ping","pad":"'
    tail = b'"}'
    body = head + b"x" * (MAX_LINE - len(head) - len(tail)) + tail
    assert len(body) == MAX_LINE
    session.receive_data(body + b"\n")
    assert session.next_event() == PingRequest()


@pytest.mark.parametrize("newline", [True, False])
def test_an_oversized_line_answers_earlier_lines_then_errors_and_closes(newline: bool) -> None:
    session = authed()
    big = b'{"type":"ping","pad":"' + b"x" * MAX_LINE + b'"}' + (b"\n" if newline else b"")
    session.receive_data(line({"type": "ping"}) + big[:1000])
    assert session.next_event() == PingRequest()
    session.receive_data(big[1000:] + line({"type": "ping"}))
    assert session.next_event() is None
    [error] = sent(session)
    assert error["code"] == "bad_request" and "longer than 65536" in error["message"]
    assert session.close_expected


def test_eof_answers_complete_lines_then_closes_without_a_word() -> None:
    session = authed()
    session.receive_data(line({"type": "ping"}) + b'{"type":"pi')
    session.receive_eof()
    assert session.next_event() == PingRequest()
    assert session.next_event() is None
    assert session.close_expected and session.data_to_send() == []


def test_line_buffer_limits_incomplete_lines() -> None:
    buffer = LineBuffer(10)
    assert buffer.feed(b"0123456789\nab") == [b"0123456789"]
    assert buffer.pending == 2
    with pytest.raises(LineTooLong):
        buffer.feed(b"cdefghijkl")


@pytest.mark.parametrize("held", [b"", b"o"])
def test_line_buffer_refuses_a_long_line_and_keeps_the_lines_before_it(held: bytes) -> None:
    """Whether part of a line was held back or not (two ways through feed)."""
    buffer = LineBuffer(10)
    assert buffer.feed(held) == []
    chunk = b"ok\r\n"[len(held) :] + b"x" * 11 + b"\nlater\n"
    with pytest.raises(LineTooLong) as caught:
        buffer.feed(chunk)
    assert caught.value.lines == [b"ok"]


# --- rate limit -----------------------------------------------------------------------------


def test_rate_limit_allows_a_burst_of_100_then_50_per_second() -> None:
    clock = FakeClock()
    session = authed(clock)
    session.receive_data(line({"type": "ping"}) * 100 + update("late", manga_id=1, chapter=1))
    assert drain(session) == [PingRequest()] * 100
    [error] = sent(session)
    assert error["code"] == "rate_limited" and error["id"] == "late"
    assert 0 < error["retry_after"] <= 0.02
    assert not session.close_expected
    clock.now += 0.02  # one token back
    session.receive_data(line({"type": "ping"}) * 2)
    assert drain(session) == [PingRequest()]
    assert [e["code"] for e in sent(session)] == ["rate_limited"]
    clock.now += 10  # refills to the burst, not beyond
    session.receive_data(line({"type": "ping"}) * 101)
    assert len(drain(session)) == 100


def test_token_bucket_math() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=50, burst=2, clock=clock)
    assert bucket.take() and bucket.take() and not bucket.take()
    assert bucket.retry_after() == pytest.approx(0.02)
    clock.now += 0.01
    assert not bucket.take()
    clock.now += 0.01
    assert bucket.take()


# --- messages out ---------------------------------------------------------------------------


def test_server_messages_have_the_spec_shapes() -> None:
    session = authed()
    progress = {"manga_id": 1, "chapter": 2.5, "status": "reading", "version": 3}
    session.send_ack("m1", progress)
    session.send_progress(progress)
    session.send_sync_done()
    session.send_pong("2024-01-01T00:00:00Z")
    session.send_error("not_found", "manga 1 not found", message_id="m1")
    assert sent(session) == [
        {"type": "ack", "id": "m1", "progress": progress},
        {"type": "progress", "data": progress},
        {"type": "sync_done"},
        {"type": "pong", "server_time": "2024-01-01T00:00:00Z"},
        {"type": "error", "code": "not_found", "message": "manga 1 not found", "id": "m1"},
    ]
    session.send_pong()
    [pong] = sent(session)
    assert pong["server_time"].endswith("Z")


def test_encode_is_one_line_of_utf8() -> None:
    raw = encode({"text": "two\nlines \u00e9", "n": Decimal("5.5")})
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert orjson.loads(raw) == {"text": "two\nlines é", "n": 5.5}


_FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=5),
    st.sampled_from([99_999, 100_000, 100_001, 2**31, 2**63 - 1]),
    st.floats(min_value=-2.0, max_value=100_002.0),
    st.sampled_from(["reading", "completed", "on_hold", "READING", "", "7"]),
    st.lists(st.integers(), max_size=1),
)


@given(
    st.dictionaries(
        st.sampled_from(["manga_id", "chapter", "volume", "status", "device"]),
        _FIELD_VALUES,
    )
)
def test_the_lean_update_path_agrees_with_the_schema(data: dict[str, Any]) -> None:
    """Whatever the lean path accepts, the schema accepts with the same values."""
    lean = _lean_progress("m", data)
    if lean is not None:
        assert _schema_progress("m", data) == lean
        assert type(lean.chapter) is float


def test_the_lean_update_path_takes_the_common_update() -> None:
    data = {"manga_id": 7, "chapter": 12, "volume": 2, "status": "reading"}
    assert _lean_progress(1, data) == _schema_progress(1, data)
    assert _lean_progress(1, data) == ProgressUpdate(1, 7, 12.0, ReadingStatus.READING, 2)


@pytest.mark.parametrize("message_id", ["m-1", 7, -3, 'quote " and \\ back'])
def test_lines_around_an_encoded_entry_are_the_messages_encoded_whole(
    message_id: str | int,
) -> None:
    entry = {"manga_id": 5, "chapter": 12.5, "notes": "line\nbreak", "manga": {"id": 5}}
    body = orjson.dumps(entry)
    assert ack_line(message_id, body) == encode(
        {"type": "ack", "id": message_id, "progress": entry}
    )
    assert progress_line(body) == encode({"type": "progress", "data": entry})
