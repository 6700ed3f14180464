"""Scale-out: a notification triggered on one ``mangahub serve udp`` process reaches a
subscriber of another, over the shared PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from mangahub.app import Runtime
from tests.conftest import BACKEND, Backend, MakeUser
from tests.live_server import LiveServer, live_server
from tests.udp.conftest import UdpClient, follow, new_series, wait_delivered

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BACKEND != "postgres",
        reason="scale-out needs two processes sharing PostgreSQL and Redis "
        "(MANGAHUB_TEST_BACKEND=postgres)",
    ),
]


@contextlib.asynccontextmanager
async def udp_processes(backend: Backend, count: int) -> AsyncIterator[list[LiveServer]]:
    """``count`` × ``mangahub serve udp`` on ephemeral ports sharing this run's
    database, Redis namespace and secrets (the data dir), started side by side, each
    ready once its trigger listens (it starts after the UDP server)."""
    env = backend.process_env()
    managers = [
        live_server(env, "udp", wait_for="trigger", startup_timeout=45) for _ in range(count)
    ]
    started = await asyncio.gather(
        *(asyncio.to_thread(m.__enter__) for m in managers), return_exceptions=True
    )
    try:
        servers = []
        for result in started:
            if isinstance(result, BaseException):
                raise result
            servers.append(result)
        yield servers
    finally:
        await asyncio.gather(
            *(
                asyncio.to_thread(m.__exit__, None, None, None)
                for m, result in zip(managers, started, strict=True)
                if not isinstance(result, BaseException)
            )
        )


async def test_trigger_on_one_process_reaches_a_subscriber_of_another(
    backend: Backend,
    runtime: Runtime,
    client: httpx.AsyncClient,
    make_user: MakeUser,
) -> None:
    reader = await make_user()
    manga_id, title = await new_series(runtime)
    await follow(client, reader, manga_id)
    assert runtime.settings.internal_token is not None
    token = runtime.settings.internal_token.get_secret_value()

    async with udp_processes(backend, 2) as (a, b):
        udp = await UdpClient.open(b.addresses["udp"])
        try:
            await udp.subscribe(reader.access_token)
            host, port = a.addresses["trigger"]
            async with httpx.AsyncClient(
                base_url=f"http://{host}:{port}", headers={"X-Internal-Token": token}
            ) as trigger:
                r = await trigger.post(
                    "/notify/new-chapter",
                    json={"manga_id": manga_id, "title": title, "chapter": 42, "old_chapter": 41},
                )
            assert r.status_code == 202, r.text
            assert r.json() == {"accepted": True, "recipients": 1}
            [message] = await udp.notifications(1)
            assert (message["manga_id"], message["chapter"]) == (manga_id, 42)
            await wait_delivered(runtime, message["id"])
        finally:
            udp.close()
