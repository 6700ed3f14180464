"""A server process is SIGKILLed under HTTP and TCP load and started again on the same
ports: clients see their connections break, reconnect, and carry on; every write the
dead process acknowledged is in the database."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.conftest import Backend
from tests.faults.clients import HttpWriter, TcpWriter
from tests.faults.conftest import (
    Stopwatch,
    create_manga,
    fault_env,
    register,
    serving,
    stored_progress,
)
from tests.live_server import free_port

pytestmark = pytest.mark.slow

RECOVERY_BOUND = 60.0


async def keep_writing(writer: TcpWriter | HttpWriter) -> None:
    while await writer.write_one():
        await asyncio.sleep(0.01)


async def test_sigkilled_server_restarts_without_losing_acknowledged_writes(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert backend.database_url is not None
    ports = {
        "MANGAHUB_HTTP_PORT": str(free_port()),
        "MANGAHUB_TCP_PORT": str(free_port()),
        "MANGAHUB_UDP_PORT": str(free_port()),
        "MANGAHUB_TRIGGER_PORT": str(free_port()),
    }
    env = fault_env(
        tmp_path_factory.mktemp("kill-fault"),
        backend.database_url,
        backend.redis_url,
        backend.redis_namespace,
        **ports,
    )
    async with serving(env) as first:
        user_id, token = await register(first.http_url)
        manga = await create_manga(backend.database_url, 400)
        tcp = TcpWriter(first.addresses["tcp"], token, manga[:200], reply_timeout=20)
        http = HttpWriter(first.http_url, token, manga[200:], reply_timeout=20)
        tasks = [asyncio.create_task(keep_writing(w)) for w in (tcp, http)]
        try:
            async with asyncio.timeout(RECOVERY_BOUND):
                while len(tcp.log.acked) < 20 or len(http.log.acked) < 20:
                    await asyncio.sleep(0.02)
            first.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.process.wait, 10)
            killed = Stopwatch()
            acked_before = (len(tcp.log.acked), len(http.log.acked))
            async with serving(env) as second:
                started = killed.elapsed()
                assert second.addresses["tcp"] == first.addresses["tcp"]
                async with asyncio.timeout(RECOVERY_BOUND):
                    while len(tcp.log.acked) == acked_before[0] or (
                        len(http.log.acked) == acked_before[1]
                    ):
                        await asyncio.sleep(0.02)
                    recovered = killed.elapsed()
                    await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await tcp.drop()
            await http.close()
    print(
        f"\nSIGKILL under load: replacement listening {started:.2f} s after the kill, "
        f"both doors writing again {recovered:.2f} s after it; broken TCP sessions "
        f"{tcp.log.broken}, failed HTTP calls {http.log.broken}, refused {tcp.log.refused} "
        f"{http.log.refused}"
    )
    assert not tcp.todo and not http.todo
    assert tcp.log.broken >= 1, "the TCP session should have seen the process die"
    assert set(tcp.log.refused) <= {"unavailable"} and set(http.log.refused) <= {"unavailable"}
    stored = await stored_progress(backend.database_url, user_id)
    for log in (tcp.log, http.log):
        missing = {m: c for m, c in log.acked.items() if stored.get(m) != c}
        assert not missing, f"acknowledged writes lost: {missing}"
