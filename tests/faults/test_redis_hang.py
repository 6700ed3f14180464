"""A Redis that hangs (SIGSTOP: connections accepted, nothing answered) costs what a
dead one costs: the first call waits one short client timeout, then the breaker keeps
every request off Redis until a background ping gets an answer again."""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable

import httpx
import pytest

from mangahub.app import Runtime, build_runtime
from mangahub.http.app import create_app
from tests.conftest import Backend
from tests.faults.conftest import create_manga
from tests.faults.infra import PrivateRedis
from tests.faults.test_redis_outage import until

pytestmark = pytest.mark.slow

# Far above the 0.5 s client timeout plus a bcrypt hash, far below the 15-20 s a
# login took when each Redis call waited 5 s twice.
REQUEST_BOUND = 3.0


async def timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = await call
    return response, time.monotonic() - start


@contextlib.asynccontextmanager
async def in_process(backend: Backend, redis_url: str) -> AsyncIterator[Runtime]:
    settings = backend.settings(
        redis_url=redis_url, redis_namespace=f"fault-hang-{uuid.uuid4().hex[:8]}"
    )
    async with build_runtime(settings, bootstrap=False) as rt:
        yield rt


async def test_a_hung_redis_costs_milliseconds(
    backend: Backend, runtime: Runtime, private_redis: PrivateRedis
) -> None:
    assert backend.database_url is not None and private_redis.process is not None
    [series] = await create_manga(backend.database_url, 1)
    async with in_process(backend, private_redis.url) as rt:
        transport = httpx.ASGITransport(app=create_app(rt), client=("127.0.0.1", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            name = f"hang_{uuid.uuid4().hex[:10]}"
            body = {"username": name, "email": f"{name}@example.com", "password": "pw-long-1234"}
            assert (await http.post("/api/auth/register", json=body)).status_code == 201
            login = {"username": name, "password": "pw-long-1234"}
            r = await http.post("/api/auth/login", json=login)
            assert r.status_code == 200, r.text
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}

            private_redis.process.send_signal(signal.SIGSTOP)
            try:
                logins, readies, writes = [], [], []
                for chapter in range(1, 6):
                    r, took = await timed(http.post("/api/auth/login", json=login))
                    assert r.status_code == 200, r.text
                    logins.append(took)
                    r, took = await timed(http.get("/readyz"))
                    assert (r.status_code, r.json()["status"]) == (200, "degraded"), r.text
                    readies.append(took)
                    r, took = await timed(
                        http.put(
                            "/api/users/progress",
                            json={"manga_id": series, "chapter": chapter, "status": "reading"},
                            headers=auth,
                        )
                    )
                    assert r.status_code == 200, r.text
                    writes.append(took)
                assert not rt.cache.link.up  # type: ignore[attr-defined]
            finally:
                private_redis.process.send_signal(signal.SIGCONT)
            print(
                "\nhung redis: logins "
                + ", ".join(f"{t:.2f}" for t in logins)
                + " s; /readyz "
                + ", ".join(f"{t:.3f}" for t in readies)
                + " s; progress writes "
                + ", ".join(f"{t:.3f}" for t in writes)
                + " s"
            )
            assert max(logins) < REQUEST_BOUND, logins
            assert max(readies) < REQUEST_BOUND, readies
            assert max(writes) < REQUEST_BOUND, writes
            # After the first timeout nothing waits on Redis any more.
            assert max(readies[1:] + writes[1:]) < 0.5, (readies, writes)

            link = rt.cache.link  # type: ignore[attr-defined]
            back = await until(lambda: link.up)
            print(f"hung redis: link up again {back:.2f} s after SIGCONT")
            r = await http.get("/readyz")
            assert r.json()["status"] == "ok", r.text
