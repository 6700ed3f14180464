"""Redis goes away and comes back: MangaHub keeps serving from the database, events
still reach the clients of the process they happened on, and once Redis is back the
cache and cross-process fan-out resume by themselves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from pathlib import Path

import httpx
import pytest

from mangahub.bus import MISSED
from tests.conftest import Backend, redis_parts
from tests.faults.clients import TcpWriter
from tests.faults.conftest import (
    Stopwatch,
    create_manga,
    fault_env,
    register,
    serving,
    stored_progress,
)
from tests.faults.infra import PrivateRedis
from tests.live_server import LiveServer
from tests.tcp.conftest import Line
from tests.udp.conftest import UdpClient
from tests.ws.conftest import WsClient, open_client

pytestmark = pytest.mark.slow

# "It recovered at all": far above anything measured, far below a hang.
RECOVERY_BOUND = 30.0


async def until(predicate: object, timeout: float = RECOVERY_BOUND) -> float:
    """Poll a zero-argument callable until it is true; the seconds it took."""
    watch = Stopwatch()
    assert callable(predicate)
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)
    return watch.elapsed()


async def test_cache_and_bus_ride_out_a_redis_outage(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    namespace = f"fault-{uuid.uuid4().hex[:8]}"
    async with (
        redis_parts(private_redis.url, namespace) as (cache_a, bus_a),
        redis_parts(private_redis.url, namespace) as (cache_b, bus_b),
    ):
        on_a = await bus_a.subscribe("topic")
        on_b = await bus_b.subscribe("topic")
        await bus_a.publish("topic", {"n": 1})
        assert await asyncio.wait_for(on_b.get(), 5) == ("topic", {"n": 1})
        assert await asyncio.wait_for(on_a.get(), 5) == ("topic", {"n": 1})
        await cache_a.set("k", {"v": 1}, 60)
        assert await cache_b.get("k") == {"v": 1}

        caplog.clear()
        caplog.set_level(logging.WARNING, logger="mangahub.redislink")
        private_redis.stop()
        outage = Stopwatch()

        # Cache: misses, skipped writes, local counters; never an exception.
        for _ in range(50):
            assert await cache_a.get("k") is None
            await cache_a.set("k", {"v": 2}, 60)
            await cache_a.delete("k")
        counts = [(await cache_a.incr("guard", 60))[0] for _ in range(3)]
        assert counts == [1, 2, 3]
        with pytest.raises(Exception):  # noqa: B017 - readiness must see the real failure
            await cache_a.ping()

        # Bus: this process's subscribers still hear this process's events.
        for n in range(2, 6):
            await bus_a.publish("topic", {"n": n})
            assert await asyncio.wait_for(on_a.get(), 5) == ("topic", {"n": n})
        during = await bus_a.subscribe("made-during-outage")
        await bus_a.publish("made-during-outage", {"n": 0})
        assert await asyncio.wait_for(during.get(), 5) == ("made-during-outage", {"n": 0})
        assert not bus_a.connected and not bus_b.connected
        assert outage.elapsed() < 5, "operations waited on the dead Redis"

        down = [r for r in caplog.records if "redis unreachable" in r.getMessage()]
        assert len(down) == 2, [r.getMessage() for r in caplog.records]  # one per process

        private_redis.start()
        recovery = await until(lambda: bus_a.connected and bus_b.connected)
        print(f"\nredis outage: bus reconnected {recovery:.2f} s after Redis came back")

        # Cross-process fan-out again, including for the topic subscribed while down.
        await bus_b.publish("made-during-outage", {"n": 7})
        assert await asyncio.wait_for(during.get(), 5) == ("made-during-outage", MISSED)
        assert await asyncio.wait_for(during.get(), 5) == ("made-during-outage", {"n": 7})
        # Every subscription learns that it may have missed events meanwhile (the
        # publishes of the other process never reached it).
        for sub in (on_a, on_b, during):
            assert sub.dropped == 1
        assert await asyncio.wait_for(on_b.get(), 5) == ("topic", MISSED)
        await bus_a.publish("topic", {"n": 8})
        assert await asyncio.wait_for(on_b.get(), 5) == ("topic", {"n": 8})
        # The cache is shared again (the gate reopens within its retry interval).
        await asyncio.sleep(cache_a.link.retry_interval)
        await cache_a.set("k", {"v": 3}, 60)
        assert await cache_b.get("k") == {"v": 3}
        back = [r for r in caplog.records if "reachable again" in r.getMessage()]
        assert len(back) == 2
        await on_a.close()
        await on_b.close()
        await during.close()


async def chat_until(sender: WsClient, receiver: WsClient, room: int, text: str) -> float:
    """Send ``text`` (again every 0.5 s) until ``receiver`` hears it; the seconds it took."""
    watch = Stopwatch()
    async with asyncio.timeout(RECOVERY_BOUND):
        while True:
            await sender.chat(room, text)
            with contextlib.suppress(TimeoutError):
                await receiver.recv_until(
                    lambda m: m["type"] == "chat" and m["content"] == text, 0.5
                )
                return watch.elapsed()


async def notified_on_one_process(
    server: LiveServer, token: str, series: int, data_dir: Path
) -> None:
    async with httpx.AsyncClient(
        base_url=server.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as http:
        r = await http.post("/api/library", json={"manga_id": series})
        assert r.status_code == 201, r.text
    internal = (data_dir / "internal_token.secret").read_text().strip()
    host, port = server.addresses["trigger"]
    udp = await UdpClient.open(server.addresses["udp"])
    try:
        await udp.subscribe(token)
        async with httpx.AsyncClient(
            base_url=f"http://{host}:{port}", headers={"X-Internal-Token": internal}, timeout=10
        ) as trigger:
            r = await trigger.post(
                "/notify/new-chapter",
                json={"manga_id": series, "title": "Fault test", "chapter": 2, "old_chapter": 1},
            )
        assert r.status_code == 202, r.text
        [note] = await udp.notifications(1, timeout=10)
        assert (note["manga_id"], note["chapter"]) == (series, 2)
    finally:
        udp.close()


async def test_live_servers_keep_serving_through_a_redis_outage(
    backend: Backend, private_redis: PrivateRedis, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert backend.database_url is not None
    data_dir = tmp_path_factory.mktemp("redis-fault")
    env = fault_env(data_dir, backend.database_url, private_redis.url)
    async with serving(env) as one, serving(env, "api") as two:
        user_id, token = await register(one.http_url)
        # Chat as another user: the writer's progress pushes would fill these sockets.
        _, chatter = await register(one.http_url, "chatter")
        manga = await create_manga(backend.database_url, 120)
        room = manga[-1]
        tcp = one.addresses["tcp"]
        writer = TcpWriter(tcp, token, manga[:100], reply_timeout=10)
        watcher = await Line.open(tcp)
        await watcher.auth(token)
        a = await open_client(one.addresses["http"], token=chatter)
        a2 = await open_client(one.addresses["http"], token=chatter)
        b = await open_client(two.addresses["http"], token=chatter)
        try:
            for ws in (a, a2, b):
                await ws.join(room)
            await chat_until(a, b, room, "before the outage")

            private_redis.stop()
            outage = Stopwatch()
            for _ in range(30):
                assert await writer.write_one()
            # Same-process fan-out without Redis: TCP pushes and chat.
            push = await watcher.recv_type("progress", 5)
            assert push["data"]["manga_id"] in writer.log.acked
            await a.chat(room, "during the outage")
            heard = await a2.recv_until(lambda m: m.get("content") == "during the outage", 5)
            assert heard["type"] == "chat"
            async with httpx.AsyncClient(base_url=one.http_url, timeout=10) as http:
                r = await http.get("/api/genres")
                assert r.status_code == 200, r.text
                r = await http.get("/readyz")
                assert (r.status_code, r.json()["status"]) == (200, "degraded")
                assert r.json()["checks"]["database"] == "ok"
                assert r.json()["checks"]["redis"].startswith("error")
            # Notifications: a subscriber of this process hears a trigger on it.
            await notified_on_one_process(one, chatter, manga[-2], data_dir)
            # A new session can still sign in to live progress.
            late = await Line.open(tcp)
            await late.auth(token)
            await late.close()
            assert writer.log.refused == {} and writer.log.broken == 0
            served_for = outage.elapsed()

            private_redis.start()
            healed = await chat_until(a, b, room, "after the outage")
            # Events other processes published meanwhile are gone: a TCP session is
            # dropped so that its client reconnects and syncs, a WebSocket is told.
            async with asyncio.timeout(10):
                with contextlib.suppress(ConnectionResetError):
                    while await watcher.reader.read(65536):
                        pass  # the pushes of the outage, then the end
            # One for the room, one for the user's own events (in either order).
            missed = await a2.recv_until(
                lambda m: m["type"] == "missed" and m["room_id"] == room, 5
            )
            assert "missed" in missed["message"]
            print(
                f"\nredis outage: served {len(writer.log.acked)} TCP writes in {served_for:.1f} s "
                f"without Redis; cross-process chat back {healed:.2f} s after Redis returned"
            )
            while await writer.write_one():
                pass
            # At most the one drop that makes the writer resync.
            assert writer.log.refused == {} and writer.log.broken <= 1
        finally:
            await writer.drop()
            await watcher.close()
            for ws in (a, a2, b):
                await ws.close()
        stored = await stored_progress(backend.database_url, user_id)
        missing = {m: c for m, c in writer.log.acked.items() if stored.get(m) != c}
        assert not missing, f"acknowledged writes lost: {missing}"
        async with httpx.AsyncClient(base_url=one.http_url, timeout=10) as http:
            assert (await http.get("/readyz")).status_code == 200
    for server in (one, two):
        warnings = [line for line in server.output if "redis unreachable" in line]
        assert len(warnings) == 1, server.output[-20:]
