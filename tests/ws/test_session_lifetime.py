"""A chat connection lasts as long as its access token unless renewed in place, over a
real socket (docs/protocols/websocket.md "Session lifetime")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
from websockets.asyncio.client import connect

from mangahub.app import Runtime
from mangahub.cli.chat import Room
from tests.conftest import MakeUser, UserSession
from tests.tokens import short_token, until_expired
from tests.ws.conftest import Address, Connect, WsClient, ws_url

NewRoom = Callable[[], Awaitable[int]]

EXPIRED = {"type": "error", "code": "unauthorized", "message": "access token expired"}


async def push_progress(
    http: httpx.AsyncClient, user: UserSession, manga_id: int, chapter: float
) -> dict[str, object]:
    r = await http.put(
        "/api/users/progress",
        json={"manga_id": manga_id, "chapter": chapter},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    return {"type": "progress", "data": r.json()}


async def ends_expired(ws: WsClient, timeout: float = 6.0) -> None:
    """The session's last message is the expiry error, then close 1008."""
    assert await ws.recv_type("error", timeout) == EXPIRED
    assert await ws.closed() == 1008
    assert ws.conn.close_reason == "access token expired"


# --- the confirmation --------------------------------------------------------------------


async def test_every_way_of_authenticating_says_how_long_the_session_lasts(
    runtime: Runtime, ws_connect: Connect, make_user: MakeUser
) -> None:
    alice = await make_user("alice")
    by_header = await ws_connect(short_token(runtime, alice, 4))
    by_query = await ws_connect(query=f"token={short_token(runtime, alice, 4)}")
    by_message = await ws_connect()
    await by_message.send({"type": "auth", "token": short_token(runtime, alice, 4)})
    by_message.auth_ok = await by_message.recv()
    for ws in (by_header, by_query, by_message):
        assert ws.auth_ok is not None
        assert ws.auth_ok == {
            "type": "auth_ok",
            "user_id": alice.id,
            "username": alice.username,
            "expires_in": ws.auth_ok["expires_in"],
        }
        assert 2 <= ws.auth_ok["expires_in"] <= 4
    # A token fresh from login: its whole configured life.
    fresh = await ws_connect(alice.access_token)
    assert fresh.auth_ok is not None
    ttl = runtime.tokens.ttl_seconds
    assert ttl - 10 <= fresh.auth_ok["expires_in"] <= ttl


# --- expiry ------------------------------------------------------------------------------


async def test_a_session_ends_when_its_token_expires(
    runtime: Runtime, ws_connect: Connect, make_user: MakeUser, room: int
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    token = short_token(runtime, alice, 3)
    a = await ws_connect(token)
    b = await ws_connect(bob.access_token)
    await a.join(room)
    await b.join(room)
    await a.roundtrip()  # working until then
    await ends_expired(a)
    # Ended like any disconnect: alice left the room.
    left = await b.recv_until(lambda m: m["type"] == "system" and "left" in m["content"])
    assert left["content"] == f"{alice.username} left the chat"
    await b.roundtrip()


async def test_a_first_message_session_expires_too(
    runtime: Runtime, ws_connect: Connect, make_user: MakeUser
) -> None:
    alice = await make_user("alice")
    ws = await ws_connect()
    await ws.send({"type": "auth", "token": short_token(runtime, alice, 2)})
    assert (await ws.recv())["type"] == "auth_ok"
    await ends_expired(ws)


# --- renewal -----------------------------------------------------------------------------


async def test_a_renewed_session_outlives_its_first_token_and_ends_with_the_new_one(
    runtime: Runtime,
    ws_connect: Connect,
    make_user: MakeUser,
    client: httpx.AsyncClient,
    new_room: NewRoom,
) -> None:
    alice = await make_user("alice")
    manga_id = await new_room()
    first = short_token(runtime, alice, 3)
    ws = await ws_connect(first)
    renewal = short_token(runtime, alice, 6)
    await ws.send({"type": "auth", "token": renewal})
    ok = await ws.recv()
    assert ok == {
        "type": "auth_ok",
        "user_id": alice.id,
        "username": alice.username,
        "expires_in": ok["expires_in"],
    }
    assert 4 <= ok["expires_in"] <= 6

    await until_expired(first)
    # Still there, and nothing (no expiry error) came in between.
    pushed = await push_progress(client, alice, manga_id, 3)
    assert await ws.recv() == pushed
    await ws.roundtrip()
    # The session now lasts exactly as long as the renewal token.
    await ends_expired(ws)


async def test_renewal_by_another_user_or_with_a_bad_token_changes_nothing(
    runtime: Runtime,
    ws_connect: Connect,
    make_user: MakeUser,
    client: httpx.AsyncClient,
    new_room: NewRoom,
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    manga_id = await new_room()
    ws = await ws_connect(short_token(runtime, alice, 5))

    await ws.send({"type": "auth", "token": bob.access_token})
    assert await ws.recv() == {
        "type": "error",
        "code": "forbidden",
        "message": "a session cannot change user",
    }
    await ws.send({"type": "auth", "token": "not-a-jwt"})
    refused = await ws.recv()
    assert (refused["type"], refused["code"]) == ("error", "unauthorized")
    await ws.send({"type": "auth", "token": short_token(runtime, alice, -30)})
    assert await ws.recv() == EXPIRED  # an expired renewal token; the session stays

    # Still alice's session, still open: her pushes come, bob's do not.
    await push_progress(client, bob, manga_id, 7)
    pushed = await push_progress(client, alice, manga_id, 2)
    assert await ws.recv() == pushed
    await ws.roundtrip()
    # Nor did bob's 15-minute token extend it: it ends with alice's short one.
    await ends_expired(ws, timeout=8)


# --- the shipped client ------------------------------------------------------------------


class RecordingRoom(Room):
    """The CLI's room, with what it would print kept in a list."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lines: list[str] = []

    def say(self, markup: str) -> None:
        self.lines.append(markup)


async def test_the_cli_room_renews_on_its_own_and_keeps_its_session(
    runtime: Runtime,
    ws_address: Address,
    ws_connect: Connect,
    make_user: MakeUser,
    room: int,
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    issued: list[str] = []

    def token_source() -> str:  # as Api.access_token: blocking, a fresh token each time
        issued.append(short_token(runtime, alice, 3))
        return issued[-1]

    async with connect(
        ws_url(ws_address), additional_headers={"Authorization": f"Bearer {token_source()}"}
    ) as conn:
        chat = RecordingRoom(conn, room, False)
        await chat.join()
        tasks = [
            asyncio.create_task(chat.incoming()),
            asyncio.create_task(chat.keep_renewed(token_source)),
        ]
        try:
            # Past the first token's life, then past the first renewal's.
            await until_expired(issued[0])
            await until_expired(issued[1])
            b = await ws_connect(bob.access_token)
            await b.join(room)
            await b.chat(room, "still there?")
            async with asyncio.timeout(5):
                while not any("still there?" in line for line in chat.lines):
                    assert not any(t.done() for t in tasks), [t.exception() for t in tasks]
                    await asyncio.sleep(0.05)
            assert not any(t.done() for t in tasks)
            assert len(issued) >= 3  # the first token and at least two renewals
            assert not any("expired" in line or "error" in line for line in chat.lines)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
