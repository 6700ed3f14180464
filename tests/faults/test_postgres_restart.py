"""PostgreSQL restarts under HTTP and TCP writes: writes in flight fail fast with the
retryable ``unavailable`` error (HTTP 503, TCP error frame), nothing hangs, and once
the database is back the same MangaHub process writes again; no acknowledged write
is lost. Reads after the restart find no dead pooled connection."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.faults.clients import HttpWriter, TcpWriter, WriteLog
from tests.faults.conftest import (
    Stopwatch,
    create_database,
    create_manga,
    fault_env,
    register,
    serving,
    stored_progress,
)
from tests.faults.infra import PrivatePostgres

pytestmark = pytest.mark.slow

# A reply slower than this is a hang (connect and statement timeouts are 5 s and 30 s,
# and a refused connection fails at once).
REPLY_BOUND = 20.0
RECOVERY_BOUND = 60.0
DOWNTIME = 2.0


async def keep_writing(writer: TcpWriter | HttpWriter, done: asyncio.Event) -> None:
    while not done.is_set() and await writer.write_one():
        await asyncio.sleep(0.02)


async def test_writes_fail_fast_and_resume_across_a_postgres_restart(
    private_postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> None:
    database_url = await create_database(private_postgres)
    env = fault_env(tmp_path_factory.mktemp("pg-fault"), database_url, None)
    async with serving(env) as server:
        user_id, token = await register(server.http_url)
        manga = await create_manga(database_url, 160)
        tcp = TcpWriter(server.addresses["tcp"], token, manga[:80], reply_timeout=REPLY_BOUND)
        http = HttpWriter(server.http_url, token, manga[80:], reply_timeout=REPLY_BOUND)
        done = asyncio.Event()
        tasks = [asyncio.create_task(keep_writing(w, done)) for w in (tcp, http)]
        try:
            async with asyncio.timeout(RECOVERY_BOUND):
                while len(tcp.log.acked) < 10 or len(http.log.acked) < 10:
                    await asyncio.sleep(0.05)
            await asyncio.to_thread(private_postgres.stop, "fast")
            await asyncio.sleep(DOWNTIME)
            await asyncio.to_thread(private_postgres.start)
            back = Stopwatch()
            marks = {"tcp": tcp.log.last_ack_at, "http": http.log.last_ack_at}

            async def recovered(log: WriteLog, mark: float) -> float:
                while log.last_ack_at <= mark:
                    await asyncio.sleep(0.02)
                return back.elapsed()

            async with asyncio.timeout(RECOVERY_BOUND):
                tcp_back, http_back = await asyncio.gather(
                    recovered(tcp.log, marks["tcp"]), recovered(http.log, marks["http"])
                )
                await asyncio.gather(*tasks)
        finally:
            done.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await tcp.drop()
            await http.close()
        print(
            f"\npostgres restart ({DOWNTIME:.0f} s down): first acked write "
            f"{tcp_back:.2f} s (TCP) / {http_back:.2f} s (HTTP) after it was back; "
            f"refused meanwhile: TCP {tcp.log.refused}, HTTP {http.log.refused} "
            f"{http.statuses}; slowest reply TCP {tcp.log.slowest:.2f} s, "
            f"HTTP {http.log.slowest:.2f} s"
        )
        # Everything was written in the end, by the same server process.
        assert not tcp.todo and not http.todo
        assert server.process.poll() is None
        # The outage was seen, and only as the retryable error.
        assert set(tcp.log.refused) == {"unavailable"}, "\n".join(server.output[-80:])
        assert set(http.log.refused) == {"unavailable"}, http.log.refused
        assert set(http.statuses) == {200, 503}, http.statuses
        assert tcp.log.broken == 0, "the TCP session should survive a database restart"
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
            assert (await client.get("/readyz")).status_code == 200
    stored = await stored_progress(database_url, user_id)
    for log in (tcp.log, http.log):
        missing = {m: c for m, c in log.acked.items() if stored.get(m) != c}
        assert not missing, f"acknowledged writes lost: {missing}"


async def test_reads_after_a_postgres_restart_get_live_connections(
    private_postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The pool held connections the restart closed; the first reads once the server
    is back are answered, not failed once per dead connection."""
    database_url = await create_database(private_postgres)
    env = fault_env(tmp_path_factory.mktemp("pg-read"), database_url, None)
    async with serving(env) as server:
        # Series the server has not read yet: each GET is a database read.
        manga = await create_manga(database_url, 40)
        async with httpx.AsyncClient(base_url=server.http_url, timeout=REPLY_BOUND) as client:

            async def read_all(ids: list[int]) -> set[int]:
                replies = await asyncio.gather(*(client.get(f"/api/manga/{i}") for i in ids))
                return {r.status_code for r in replies}

            # Concurrent reads: several pooled connections, all dead after the restart.
            assert await read_all(manga[:20]) == {200}
            await asyncio.to_thread(private_postgres.stop, "fast")
            await asyncio.to_thread(private_postgres.start)
            assert await read_all(manga[20:]) == {200}
