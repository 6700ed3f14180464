"""A TCP session lasts as long as its token, and renews in place: real sockets against
a server on 127.0.0.1:0, with tokens issued a few seconds short of expiry."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from mangahub.app import Runtime
from mangahub.tcp.client import Backoff, ProgressClient, ProgressSyncError
from mangahub.tcp.server import TcpServer
from tests.conftest import MakeUser, UserSession
from tests.tcp.conftest import Connect, Line
from tests.tokens import expiry, seconds_left, short_token, until_expired

EXPIRED = {"type": "error", "code": "unauthorized", "message": "access token expired"}


async def still_works(line: Line) -> None:
    await line.send({"type": "ping"})
    assert (await line.recv())["type"] == "pong"


async def push_arrives(writer: Line, reader: Line, manga_id: int, chapter: float) -> None:
    """An update by ``writer`` is acked and pushed to ``reader`` (same user)."""
    await writer.update(f"w{chapter}", manga_id, chapter)
    ack = await writer.recv()
    assert ack["type"] == "ack"
    assert await reader.recv() == {"type": "progress", "data": ack["progress"]}


# --- the server -------------------------------------------------------------------------------


async def test_auth_ok_says_how_long_the_token_has_left(
    connect: Connect, make_user: MakeUser, runtime: Runtime
) -> None:
    user = await make_user()
    for token in (user.access_token, short_token(runtime, user, 30)):
        left = seconds_left(token)
        ok = await (await connect()).auth(token)
        assert isinstance(ok["expires_in"], int)
        assert left - 2 <= ok["expires_in"] <= left


async def test_a_session_ends_when_its_token_expires(
    connect: Connect, make_user: MakeUser, runtime: Runtime, manga_ids: list[int]
) -> None:
    user = await make_user()
    token = short_token(runtime, user, 3)
    line = await connect()
    await line.auth(token)
    await line.update("before", manga_ids[0], 1)
    assert (await line.recv())["type"] == "ack"  # fully working until then
    assert await line.recv(timeout=10) == EXPIRED
    assert datetime.now(UTC) >= expiry(token) - timedelta(seconds=0.1)  # not before
    await line.expect_closed()


async def test_a_renewed_session_outlives_its_first_token_and_ends_with_the_new_one(
    connect: Connect, make_user: MakeUser, runtime: Runtime, manga_ids: list[int]
) -> None:
    user = await make_user()
    first = short_token(runtime, user, 2)
    watcher, writer = await connect(), await connect()
    ok = await watcher.auth(first, "watcher")
    await writer.auth(user.access_token, "writer")

    second = short_token(runtime, user, 5)
    await watcher.send({"type": "auth", "token": second})
    renewed = await watcher.recv()
    assert renewed["type"] == "auth_ok"
    assert renewed["session_id"] == ok["session_id"] and renewed["user_id"] == user.id
    assert seconds_left(second) - 2 <= renewed["expires_in"] <= seconds_left(second)
    assert renewed["expires_in"] > ok["expires_in"]

    await until_expired(first)
    # Same subscription, not a second one: exactly one push per write.
    await push_arrives(writer, watcher, manga_ids[1], 2)
    await watcher.expect_silence()
    await still_works(watcher)
    # ... and the new token's expiry ends it.
    assert await watcher.recv(timeout=10) == EXPIRED
    await watcher.expect_closed()
    await still_works(writer)


async def test_a_refused_renewal_leaves_the_session_as_it_was(
    connect: Connect, make_user: MakeUser, runtime: Runtime, manga_ids: list[int]
) -> None:
    user, other = await make_user(), await make_user("other")
    token = short_token(runtime, user, 4)
    line, writer = await connect(), await connect()
    await line.auth(token)
    await writer.auth(user.access_token)

    await line.send({"type": "auth", "token": other.access_token})
    assert await line.recv() == {
        "type": "error",
        "code": "forbidden",
        "message": "a session cannot change user",
    }
    await push_arrives(writer, line, manga_ids[2], 3)  # still this user's session

    for bad in ("not-a-jwt", short_token(runtime, user, -5)):
        await line.send({"type": "auth", "token": bad})
        error = await line.recv()
        assert error["type"] == "error" and error["code"] == "unauthorized"
        assert error["message"].startswith("renewal refused")
        await still_works(line)

    # None of that moved the deadline: the first token's expiry still ends it.
    assert await line.recv(timeout=10) == EXPIRED
    await line.expect_closed()


# --- the client library ----------------------------------------------------------------------

TokenSource = Callable[[], Awaitable[str]]


def token_source(
    runtime: Runtime, user: UserSession, seconds: float
) -> tuple[TokenSource, list[str]]:
    """A coroutine function handing out short tokens, and the list of what it handed out."""
    issued: list[str] = []

    async def source() -> str:
        issued.append(short_token(runtime, user, seconds))
        return issued[-1]

    return source, issued


async def test_the_client_renews_in_place_and_keeps_its_session(
    tcp_server: TcpServer,
    connect: Connect,
    make_user: MakeUser,
    runtime: Runtime,
    manga_ids: list[int],
) -> None:
    user = await make_user()
    source, issued = token_source(runtime, user, 3)
    writer = await connect()
    await writer.auth(user.access_token, "writer")
    async with ProgressClient(*tcp_server.address, source, device="client") as client:
        session_id = client.session_id
        assert client.expires_in is not None and client.expires_in <= 3
        await until_expired(issued[0])
        await until_expired(issued[1])  # and the first renewal's token too

        assert client.renewals >= 2 and len(issued) >= 3
        assert client.connections == 1 and client.session_id == session_id
        await writer.update("w", manga_ids[4], 5)
        ack = await writer.recv_type("ack")
        assert await client.next_progress(5) == ack["progress"]
        stored = await client.update(manga_ids[4], 6, timeout=5)
        assert stored["version"] > ack["progress"]["version"]
        assert client.connections == 1


async def test_a_client_with_a_fixed_token_is_ended_at_expiry(
    tcp_server: TcpServer, make_user: MakeUser, runtime: Runtime, manga_ids: list[int]
) -> None:
    user = await make_user()
    token = short_token(runtime, user, 2)
    async with ProgressClient(*tcp_server.address, token, backoff=Backoff(0.05, 0.2)) as client:
        await client.update(manga_ids[5], 1, timeout=5)
        await until_expired(token)
        with pytest.raises(ProgressSyncError) as info:
            await client.update(manga_ids[5], 2, timeout=10)
        assert info.value.code == "unauthorized"
        assert client.renewals == 0


async def test_a_client_whose_renewal_fails_reconnects_with_a_fresh_token(
    tcp_server: TcpServer, make_user: MakeUser, runtime: Runtime, manga_ids: list[int]
) -> None:
    user = await make_user()
    first = short_token(runtime, user, 3)
    calls = itertools.count()

    async def source() -> str:
        # Connect: the short token. Renewing it: refused. Once it expired: a good one.
        if next(calls) == 0:
            return first
        return user.access_token if seconds_left(first) < 0 else "not-a-jwt"

    async with ProgressClient(*tcp_server.address, source, backoff=Backoff(0.05, 0.2)) as client:
        first_session = client.session_id
        await until_expired(first)
        stored = await client.update(manga_ids[6], 7, timeout=10)
        assert stored["chapter"] == 7
        assert client.connections == 2 and client.session_id != first_session
