"""Durability of chat: a message is broadcast only after its commit, so every message
a member received (the sender's echo included) is in the room's history after the
server process is SIGKILLed and started again. On SQLite the chat connection commits
with ``synchronous=NORMAL``, which a crash of the process does not undo."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from mangahub.app import Runtime
from tests.conftest import Backend, MakeUser, UserSession
from tests.live_server import live_api
from tests.test_library import new_manga
from tests.ws.conftest import WsClient, open_client

pytestmark = pytest.mark.slow

SENDERS = 6
MEMBERS = 2
SEND_INTERVAL = 0.25
"""Each sender stays under the per-user chat rate (5/s): nothing is refused."""
RECEIVED_BEFORE_KILL = 40


async def test_every_broadcast_message_survives_sigkill(
    backend: Backend, runtime: Runtime, make_user: MakeUser
) -> None:
    room = await new_manga(runtime)
    senders = [await make_user("crash_sender") for _ in range(SENDERS)]
    members = [await make_user("crash_member") for _ in range(MEMBERS)]
    env = backend.process_env()
    received: dict[int, str] = {}  # id → content, from any connection
    errors: list[dict[str, Any]] = []
    sent: list[str] = []

    async def read(client: WsClient) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in client.conn:
                message = orjson.loads(raw)
                if message["type"] == "chat":
                    received[message["id"]] = message["content"]
                elif message["type"] == "error":
                    errors.append(message)

    async def send(client: WsClient, sender: int) -> None:
        with contextlib.suppress(ConnectionClosed):
            for i in range(10_000):
                content = f"sender {sender} message {i}"
                await client.chat(room, content)
                sent.append(content)
                await asyncio.sleep(SEND_INTERVAL)

    async with live_api(env) as first:
        address = first.addresses["http"]
        clients = []
        for user in [*senders, *members]:
            client = await open_client(address, token=user.access_token, query=f"manga_id={room}")
            await client.recv_type("history")
            clients.append(client)
        tasks = [asyncio.create_task(read(c)) for c in clients]
        tasks += [asyncio.create_task(send(c, i)) for i, c in enumerate(clients[:SENDERS])]
        try:
            async with asyncio.timeout(60):
                while len(received) < RECEIVED_BEFORE_KILL:
                    await asyncio.sleep(0.005)
            first.process.kill()
            await asyncio.to_thread(first.process.wait, 10)
            async with asyncio.timeout(30):
                await asyncio.gather(*tasks)  # every connection breaks
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for client in clients:
                await client.close()
    assert not errors, errors
    assert len(received) >= RECEIVED_BEFORE_KILL

    async with live_api(env) as second:
        stored = await history(second.http_url, room, senders[0])
    lost = {i: content for i, content in received.items() if stored.get(i) != content}
    assert not lost, f"broadcast before the kill, missing after it: {lost}"
    # Nothing was stored that nobody sent.
    assert set(stored.values()) <= set(sent)


async def history(http_url: str, room: int, user: UserSession) -> dict[int, str]:
    """The room's whole history over HTTP: id → content."""
    stored: dict[int, str] = {}
    before: int | None = None
    async with httpx.AsyncClient(base_url=http_url, headers=user.headers, timeout=30) as http:
        while True:
            params: dict[str, int] = {"limit": 100}
            if before is not None:
                params["before"] = before
            r = await http.get(f"/api/chat/{room}/messages", params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            stored.update({m["id"]: m["content"] for m in page["data"]})
            before = page["next_before"]
            if before is None:
                return stored
