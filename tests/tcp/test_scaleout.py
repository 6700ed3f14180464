"""Scale-out: TCP servers in separate processes share PostgreSQL and Redis, and a
device on one process sees the writes made through another."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from tests.conftest import BACKEND, Backend, MakeUser
from tests.tcp.conftest import Line, serve_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BACKEND != "postgres",
        reason="scale-out needs the shared PostgreSQL + Redis backend "
        "(MANGAHUB_TEST_BACKEND=postgres); the embedded SQLite default is one process",
    ),
]


async def test_a_device_on_process_a_receives_the_update_made_on_process_b(
    backend: Backend, make_user: MakeUser, client: httpx.AsyncClient, manga_ids: list[int]
) -> None:
    user, stranger = await make_user("multi"), await make_user("stranger")
    env = backend.process_env()
    async with contextlib.AsyncExitStack() as stack:
        proc_a, proc_b = await asyncio.gather(
            stack.enter_async_context(serve_process(env, "tcp")),
            stack.enter_async_context(serve_process(env, "tcp")),
        )
        assert proc_a.process.pid != proc_b.process.pid
        laptop = await Line.open(proc_a.addresses["tcp"])
        phone = await Line.open(proc_b.addresses["tcp"])
        nosy = await Line.open(proc_a.addresses["tcp"])
        try:
            await laptop.auth(user.access_token, "laptop")
            await phone.auth(user.access_token, "phone")
            await nosy.auth(stranger.access_token)

            await phone.update("b-1", manga_ids[0], 21)
            ack = await phone.recv()
            assert ack["type"] == "ack"
            assert await laptop.recv(10) == {"type": "progress", "data": ack["progress"]}

            await laptop.update("a-1", manga_ids[0], 22)
            ack = await laptop.recv()
            assert await phone.recv(10) == {"type": "progress", "data": ack["progress"]}

            # A write through the HTTP door of yet another process reaches both.
            r = await client.put(
                "/api/users/progress",
                json={"manga_id": manga_ids[1], "chapter": 3},
                headers=user.headers,
            )
            assert r.status_code == 200, r.text
            for line in (laptop, phone):
                push = await line.recv(10)
                assert push["data"]["version"] == r.json()["version"]

            await nosy.expect_silence(0.5)
            await phone.expect_silence(0.2)  # no echo, no duplicates
        finally:
            for line in (laptop, phone, nosy):
                await line.close()
