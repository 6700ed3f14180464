"""Timers and shutdown, on servers with shortened intervals (same code, other numbers)."""

from __future__ import annotations

import asyncio
import dataclasses

from mangahub.app import Runtime
from mangahub.chat.config import ChatConfig
from mangahub.servers import run_servers
from tests.conftest import MakeUser
from tests.ws.conftest import Connect, serve_chat


async def test_server_pings_a_silent_client_and_drops_it_after_the_idle_timeout(
    runtime: Runtime, ws_connect: Connect, make_user: MakeUser
) -> None:
    alice = await make_user("alice")
    config = ChatConfig(ping_interval=0.3, idle_timeout=0.8)
    async with serve_chat(runtime, config) as address:
        ws = await ws_connect(alice.access_token, address=address)
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await ws.recv(2) == {"type": "ping"}
        assert loop.time() - start >= 0.25
        await ws.send({"type": "pong"})  # any message counts as traffic
        assert await ws.recv(2) == {"type": "ping"}  # silence again: pinged again
        # ... and not answering ends the connection at idle_timeout.
        assert await ws.closed(3) == 1008
        assert 0.7 <= loop.time() - start <= 3


async def test_no_auth_message_in_time_is_refused(
    runtime: Runtime, ws_connect: Connect, make_user: MakeUser
) -> None:
    async with serve_chat(runtime, ChatConfig(auth_timeout=0.3)) as address:
        ws = await ws_connect(address=address)
        error = await ws.recv(2)
        assert error["type"] == "error" and error["code"] == "unauthorized"
        assert await ws.closed() == 1008


async def test_graceful_shutdown_closes_chat_sockets_with_1001(
    runtime: Runtime, ws_connect: Connect, make_user: MakeUser, room: int
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    settings = runtime.settings.model_copy(update={"http_port": 0, "host": "127.0.0.1"})
    async with run_servers(dataclasses.replace(runtime, settings=settings), ["api"]) as running:
        address = running.address("http")
        a = await ws_connect(alice.access_token, address=address, query=f"manga_id={room}")
        b = await ws_connect(bob.access_token, address=address)
        await a.recv_type("system")
        await b.roundtrip()
    # run_servers has returned: every chat socket was closed with "going away".
    assert await a.closed(2) == 1001
    assert await b.closed(2) == 1001
    assert a.conn.close_reason == "server shutting down"
