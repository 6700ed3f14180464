"""Durability: an ``ack`` means committed, even if the server dies the next instant."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from mangahub.app import Runtime
from mangahub.tcp.client import Backoff, ProgressClient
from tests.conftest import Backend, MakeUser
from tests.live_server import free_port
from tests.tcp.conftest import serve_process

pytestmark = pytest.mark.slow


async def test_every_acked_update_survives_sigkill_and_the_stream_resumes(
    backend: Backend, runtime: Runtime, make_user: MakeUser, manga_ids: list[int]
) -> None:
    user = await make_user()
    user_id = uuid.UUID(user.id)
    port = free_port()  # the restarted server takes the same port, as after a real crash
    env = backend.process_env(MANGAHUB_TCP_PORT=str(port))
    targets = manga_ids[:80]  # one update per manga: every acked value stays visible
    # A steady 40 updates/s stream, so the kill lands mid-stream with updates in flight.
    client = ProgressClient(
        "127.0.0.1",
        port,
        user.access_token,
        device="crash",
        rate=40,
        burst=10,
        backoff=Backoff(initial=0.1, maximum=0.5),
    )
    try:
        async with serve_process(env, "tcp") as first:
            await client.connect()
            updates = [
                asyncio.create_task(client.update(manga_id, i + 1.5, timeout=60))
                for i, manga_id in enumerate(targets)
            ]
            while sum(u.done() for u in updates) < 30:
                await asyncio.sleep(0.002)
            first.process.kill()
            await asyncio.to_thread(first.process.wait)
            acked = {targets[i]: u.result() for i, u in enumerate(updates) if u.done()}
        assert 30 <= len(acked) < len(targets), "the kill should land mid-stream"

        # The dead server acknowledged these: each must be in the database as acked.
        stored = {p.manga_id: p for p in await runtime.reading_list.changed_since(user_id, 0)}
        for manga_id, ack in acked.items():
            row = stored[manga_id]
            assert (row.chapter, row.version) == (ack["chapter"], ack["version"]), manga_id

        # Restarted, the client reconnects, re-sends what was never acked, and finishes.
        async with serve_process(env, "tcp"):
            results = await asyncio.wait_for(asyncio.gather(*updates), 60)
        assert client.connections >= 2
        stored = {p.manga_id: p for p in await runtime.reading_list.changed_since(user_id, 0)}
        for i, (manga_id, ack) in enumerate(zip(targets, results, strict=True)):
            assert stored[manga_id].chapter == ack["chapter"] == i + 1.5
            assert stored[manga_id].version == ack["version"]
    finally:
        await client.close()
