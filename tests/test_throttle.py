"""Registration runs bcrypt: at most ``register_max_per_address`` per client address
per window, then 429 with Retry-After, counted in the shared cache (Redis on the
PostgreSQL path). Real sockets, each test from its own loopback address."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from mangahub.app import Runtime
from mangahub.http.app import create_app
from mangahub.servers import HttpServer
from mangahub.services.auth import AuthService


def _loopback() -> str:
    """A loopback address of this test's own, so its count starts at zero."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


@pytest.fixture
async def strict_url(runtime: Runtime) -> AsyncIterator[str]:
    settings = runtime.settings.model_copy(update={"register_max_per_address": 3})
    auth = AuthService(runtime.db, runtime.cache, runtime.tokens, settings)
    strict = dataclasses.replace(runtime, settings=settings, auth=auth)
    server = HttpServer(strict, "127.0.0.1", 0, app=create_app(strict))
    await server.start()
    try:
        host, port = server.address
        yield f"http://{host}:{port}"
    finally:
        await server.stop(2)


async def _register(client: httpx.AsyncClient) -> httpx.Response:
    name = f"th_{uuid.uuid4().hex[:10]}"
    return await client.post(
        "/api/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": "long-enough-pw"},
    )


async def test_registrations_per_address_are_limited_with_retry_after(strict_url: str) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=_loopback())
    async with httpx.AsyncClient(base_url=strict_url, transport=transport, timeout=10) as client:
        for _ in range(3):
            assert (await _register(client)).status_code == 201
        refused = await _register(client)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 3600

    # Another address still registers.
    other = httpx.AsyncHTTPTransport(local_address=_loopback())
    async with httpx.AsyncClient(base_url=strict_url, transport=other, timeout=10) as client:
        assert (await _register(client)).status_code == 201
