"""Scale-out: two ``mangahub serve api`` processes share PostgreSQL and Redis; users on
different processes chat in one room, see each other join and leave, and one
process's history includes what was said through the other."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.conftest import BACKEND, Backend, MakeUser
from tests.live_server import live_api
from tests.ws.conftest import Connect, WsClient

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BACKEND != "postgres",
        reason="scale-out needs the shared PostgreSQL + Redis backend "
        "(MANGAHUB_TEST_BACKEND=postgres); the embedded SQLite default is one process",
    ),
]


async def until_presence(client: WsClient, users: list[str]) -> None:
    await client.recv_until(lambda m: m["type"] == "presence" and m["users"] == users, 10)


async def test_users_on_different_processes_chat_in_one_room(
    backend: Backend, make_user: MakeUser, ws_connect: Connect, room: int
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    both = sorted([alice.username, bob.username])
    async with contextlib.AsyncExitStack() as stack:
        proc_a, proc_b = await asyncio.gather(
            stack.enter_async_context(live_api(backend.process_env())),
            stack.enter_async_context(live_api(backend.process_env())),
        )
        assert proc_a.process.pid != proc_b.process.pid
        a = await ws_connect(alice.access_token, address=proc_a.addresses["http"])
        b = await ws_connect(bob.access_token, address=proc_b.addresses["http"])

        await a.join(room)
        await a.recv_until(lambda m: m.get("content") == f"{alice.username} joined the chat", 10)
        await b.join(room)
        # Bob's process learns that alice is in the room from alice's process.
        await until_presence(b, both)
        await a.recv_until(lambda m: m.get("content") == f"{bob.username} joined the chat", 10)
        await until_presence(a, both)

        await a.chat(room, "hello from process A")
        heard = await b.recv_type("chat", 10)
        assert (heard["username"], heard["content"]) == (alice.username, "hello from process A")
        await b.chat(room, "and back from B")
        assert (await a.recv_type("chat", 10))["content"] == "hello from process A"  # own
        assert (await a.recv_type("chat", 10))["content"] == "and back from B"

        # A newcomer on process B sees what was said through A in its history.
        late = await ws_connect(alice.access_token, address=proc_b.addresses["http"])
        history = await late.join(room)
        assert [m["content"] for m in history["messages"]] == [
            "hello from process A",
            "and back from B",
        ]
        await late.close()

        await b.close()
        await a.recv_until(lambda m: m.get("content") == f"{bob.username} left the chat", 10)
        await until_presence(a, [alice.username])
