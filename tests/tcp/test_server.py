"""The TCP door over real sockets on 127.0.0.1:0, backed by the run's runtime."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from mangahub.app import Runtime
from mangahub.bus import MemoryBus
from mangahub.domain.enums import Role
from mangahub.security.tokens import Principal, TokenCodec
from mangahub.servers import build_servers, run_servers
from mangahub.tcp.client import ProgressClient, ProgressSyncError
from mangahub.tcp.protocol import MAX_LINE
from mangahub.tcp.server import TcpServer
from tests.conftest import MakeUser
from tests.tcp.conftest import Connect, Line, start_tcp

# --- fan-out ------------------------------------------------------------------------------


async def test_two_devices_see_each_others_updates_and_the_sender_gets_the_ack(
    connect: Connect, make_user: MakeUser, manga_ids: list[int]
) -> None:
    user = await make_user()
    laptop, phone = await connect(), await connect()
    ok = await laptop.auth(user.access_token, "laptop")
    assert ok["user_id"] == user.id and ok["session_id"]
    await phone.auth(user.access_token, "phone")

    await laptop.update("u1", manga_ids[0], 12.5, "reading")
    ack = await laptop.recv()
    assert ack["type"] == "ack" and ack["id"] == "u1"
    progress = ack["progress"]
    assert progress["manga_id"] == manga_ids[0] and progress["chapter"] == 12.5
    assert progress["status"] == "reading" and progress["device"] == "laptop"
    assert progress["version"] >= 1 and progress["updated_at"].endswith("Z")

    push = await phone.recv()
    assert push == {"type": "progress", "data": progress}
    await laptop.expect_silence()  # no echo of its own write

    await phone.update("p1", manga_ids[0], 13, "completed")
    ack2 = await phone.recv()
    assert ack2["type"] == "ack" and ack2["progress"]["version"] > progress["version"]
    assert (await laptop.recv()) == {"type": "progress", "data": ack2["progress"]}
    await phone.expect_silence()


async def test_an_update_without_status_keeps_the_entrys_and_carries_the_whole_entry(
    connect: Connect, make_user: MakeUser, client: httpx.AsyncClient, manga_ids: list[int]
) -> None:
    user = await make_user()
    manga_id = manga_ids[3]
    r = await client.post(
        "/api/library",
        json={"manga_id": manga_id, "status": "on_hold", "score": 7, "notes": "slow burn"},
        headers=user.headers,
    )
    assert r.status_code == 201, r.text
    laptop, phone = await connect(), await connect()
    await laptop.auth(user.access_token, "laptop")
    await phone.auth(user.access_token, "phone")
    await laptop.send(
        {
            "type": "progress_update",
            "id": "v1",
            "data": {"manga_id": manga_id, "chapter": 20, "volume": 3},
        }
    )
    ack = await laptop.recv()
    assert ack["type"] == "ack", ack
    entry = ack["progress"]
    assert (entry["status"], entry["chapter"], entry["volume"]) == ("on_hold", 20, 3)
    assert (entry["score"], entry["notes"], entry["device"]) == (7, "slow burn", "laptop")
    assert entry["manga"]["id"] == manga_id and entry["added_at"] == r.json()["added_at"]
    assert await phone.recv() == {"type": "progress", "data": entry}
    # A status change from another door reaches the device with the rest of the entry.
    r = await client.patch(
        f"/api/library/{manga_id}", json={"status": "dropped"}, headers=user.headers
    )
    push = (await laptop.recv())["data"]
    assert push == r.json()
    assert (push["status"], push["chapter"], push["volume"]) == ("dropped", 20, 3)


async def test_another_user_sees_nothing(
    connect: Connect, make_user: MakeUser, manga_ids: list[int]
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    alice_line, bob_line = await connect(), await connect()
    await alice_line.auth(alice.access_token)
    await bob_line.auth(bob.access_token)
    await alice_line.update("a", manga_ids[1], 3)
    assert (await alice_line.recv())["type"] == "ack"
    await bob_line.expect_silence(0.5)
    await bob_line.send({"type": "sync", "since_version": 0})
    assert await bob_line.recv() == {"type": "sync_done"}


async def test_progress_written_over_http_is_pushed(
    connect: Connect, make_user: MakeUser, client: httpx.AsyncClient, manga_ids: list[int]
) -> None:
    user = await make_user()
    line = await connect()
    await line.auth(user.access_token, "tablet")
    r = await client.put(
        "/api/users/progress",
        json={"manga_id": manga_ids[2], "chapter": 7, "status": "on_hold"},
        headers=user.headers,
    )
    assert r.status_code == 200, r.text
    push = await line.recv()
    assert push["type"] == "progress"
    assert push["data"]["manga_id"] == manga_ids[2] and push["data"]["chapter"] == 7
    assert push["data"]["status"] == "on_hold"
    assert push["data"]["version"] == r.json()["version"]


async def test_updates_are_pipelined_and_acked_in_order_with_rising_versions(
    connect: Connect, make_user: MakeUser, manga_ids: list[int]
) -> None:
    user = await make_user()
    line = await connect()
    await line.auth(user.access_token)
    burst = b"".join(
        orjson.dumps(
            {
                "type": "progress_update",
                "id": f"m{i}",
                "data": {"manga_id": manga_ids[i % 5], "chapter": i},
            }
        )
        + b"\n"
        for i in range(60)
    )
    await line.send(burst)
    acks = [await line.recv() for _ in range(60)]
    assert [a["id"] for a in acks] == [f"m{i}" for i in range(60)]
    versions = [a["progress"]["version"] for a in acks]
    assert versions == sorted(versions) and len(set(versions)) == 60
    # Last write wins: each manga holds the chapter of its latest update.
    await line.send({"type": "sync", "since_version": 0})
    rows = {}
    while (message := await line.recv())["type"] != "sync_done":
        rows[message["data"]["manga_id"]] = message["data"]["chapter"]
    assert rows == {manga_ids[i % 5]: i for i in range(55, 60)}


async def test_update_errors_name_the_message_and_keep_the_connection(
    connect: Connect, make_user: MakeUser, manga_ids: list[int]
) -> None:
    user = await make_user()
    line = await connect()
    await line.auth(user.access_token)
    await line.update("ghost", 2_000_000_000, 1)
    error = await line.recv()
    assert error["type"] == "error" and error["id"] == "ghost"
    assert error["code"] in ("not_found", "validation_error")
    await line.update("fine", manga_ids[0], 1)
    assert (await line.recv())["id"] == "fine"


async def test_half_close_gets_every_reply_then_the_server_closes(
    connect: Connect, make_user: MakeUser, manga_ids: list[int]
) -> None:
    # What a script piping lines into `nc` does: write everything, then shut down writing.
    user = await make_user()
    line = await connect()
    await line.send({"type": "auth", "token": user.access_token, "device": "script"})
    await line.update("h1", manga_ids[5], 8)
    await line.send({"type": "sync", "since_version": 0})
    line.writer.write_eof()
    kinds = []
    while True:
        try:
            kinds.append((await line.recv())["type"])
        except EOFError:
            break
    assert kinds == ["auth_ok", "ack", "progress", "sync_done"]


# --- sync, ping -------------------------------------------------------------------------------


async def test_sync_returns_rows_changed_since_the_version_then_sync_done(
    connect: Connect, make_user: MakeUser, manga_ids: list[int]
) -> None:
    user = await make_user()
    line = await connect()
    await line.auth(user.access_token)
    versions = {}
    for i, manga_id in enumerate(manga_ids[:4]):
        await line.update(f"s{i}", manga_id, i + 1)
        versions[manga_id] = (await line.recv())["progress"]["version"]
    await line.send({"type": "sync", "since_version": 0})
    everything = []
    while (message := await line.recv())["type"] == "progress":
        everything.append(message["data"])
    assert message == {"type": "sync_done"}
    assert [row["manga_id"] for row in everything] == manga_ids[:4]  # ordered by version
    cut = versions[manga_ids[1]]
    await line.send({"type": "sync", "since_version": cut})
    later = []
    while (message := await line.recv())["type"] == "progress":
        later.append(message["data"])
    assert [row["manga_id"] for row in later] == manga_ids[2:4]
    assert all(row["version"] > cut for row in later)


async def test_ping_pong(connect: Connect, make_user: MakeUser) -> None:
    user = await make_user()
    line = await connect()
    await line.auth(user.access_token)
    await line.send({"type": "ping"})
    pong = await line.recv()
    assert pong["type"] == "pong"
    server_time = datetime.fromisoformat(pong["server_time"].replace("Z", "+00:00"))
    assert abs(server_time - datetime.now(UTC)) < timedelta(seconds=5)


# --- errors ----------------------------------------------------------------------------------


async def _still_serving(connect: Connect, token: str) -> None:
    line = await connect()
    await line.auth(token)
    await line.send({"type": "ping"})
    assert (await line.recv())["type"] == "pong"


def _foreign_token(runtime: Runtime, *, expired: bool = False) -> str:
    principal = Principal(uuid.uuid4(), "mallory", "m@example.com", Role.ADMIN)
    if expired:
        return runtime.tokens.issue(principal, now=datetime.now(UTC) - timedelta(hours=1))
    return TokenCodec("some-other-secret-of-at-least-32-chars", 900).issue(principal)


@pytest.mark.parametrize("kind", ["garbage", "wrong_key", "expired"])
async def test_bad_token_is_unauthorized_and_closed(
    connect: Connect, make_user: MakeUser, runtime: Runtime, kind: str
) -> None:
    token = {
        "garbage": "not-a-jwt",
        "wrong_key": _foreign_token(runtime),
        "expired": _foreign_token(runtime, expired=True),
    }[kind]
    line = await connect()
    await line.send({"type": "auth", "token": token, "device": "x"})
    error = await line.recv()
    assert error["type"] == "error" and error["code"] == "unauthorized"
    await line.expect_closed()
    await _still_serving(connect, (await make_user()).access_token)


async def test_message_before_auth_is_unauthorized_and_closed(
    connect: Connect, make_user: MakeUser, manga_ids: list[int]
) -> None:
    line = await connect()
    await line.update("sneaky", manga_ids[0], 99)
    error = await line.recv()
    assert error["type"] == "error" and error["code"] == "unauthorized"
    await line.expect_closed()
    await _still_serving(connect, (await make_user()).access_token)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{this is not json\n", "malformed"),
        (b'{"type":"warp_drive"}\n', "unknown message type"),
        (b'{"type":"progress_update","id":"x","data":{"manga_id":"one"}}\n', "invalid"),
        (b'{"type":"sync","since_version":-5}\n', "since_version"),
    ],
)
async def test_bad_requests_keep_the_connection_open(
    connect: Connect, make_user: MakeUser, raw: bytes, fragment: str
) -> None:
    line = await connect()
    await line.auth((await make_user()).access_token)
    await line.send(raw)
    error = await line.recv()
    assert error["type"] == "error" and error["code"] == "bad_request"
    assert fragment in error["message"]
    await line.send({"type": "ping"})
    assert (await line.recv())["type"] == "pong"


async def test_oversized_line_is_an_error_and_closes(connect: Connect, make_user: MakeUser) -> None:
    user = await make_user()
    line = await connect()
    await line.auth(user.access_token)
    await line.send(b'{"type":"ping","pad":"' + b"x" * (MAX_LINE + 10) + b'"}\n')
    error = await line.recv()
    assert error["type"] == "error" and error["code"] == "bad_request"
    await line.expect_closed()
    await _still_serving(connect, user.access_token)


async def test_flood_past_the_rate_limit_is_rate_limited_and_others_are_served(
    connect: Connect, make_user: MakeUser
) -> None:
    user = await make_user()
    line = await connect()
    await line.auth(user.access_token)
    await line.send(b'{"type":"ping"}\n' * 150)
    replies = [await line.recv() for _ in range(150)]
    kinds = [r["type"] for r in replies]
    assert kinds.count("pong") >= 100  # the burst (plus what refilled meanwhile)
    limited = [r for r in replies if r["type"] == "error"]
    assert limited and {r["code"] for r in limited} == {"rate_limited"}
    assert all(r["retry_after"] > 0 for r in limited)
    await _still_serving(connect, user.access_token)
    await asyncio.sleep(0.1)  # 5 tokens back
    await line.send({"type": "ping"})
    assert (await line.recv())["type"] == "pong"  # still open


async def test_a_connection_beyond_the_limit_is_told_unavailable_and_closed(
    runtime: Runtime, make_user: MakeUser, connect: Connect
) -> None:
    user = await make_user()
    server = await start_tcp(runtime, max_connections=2)
    try:
        first, second = await connect(server.address), await connect(server.address)
        await first.auth(user.access_token)
        await second.auth(user.access_token)
        extra = await connect(server.address)
        # The client speaks first, as a real one does: its auth line must not turn
        # the refusal into a reset before the reason is read.
        await extra.send({"type": "auth", "token": user.access_token})
        refusal = await extra.recv()
        assert refusal["type"] == "error" and refusal["code"] == "unavailable", refusal
        await extra.expect_closed()
        # The held sessions are untouched, and a freed place is taken again.
        await first.send({"type": "ping"})
        assert (await first.recv())["type"] == "pong"
        await second.close()
        async with asyncio.timeout(5):
            while server.connection_count > 1:
                await asyncio.sleep(0.01)
        again = await connect(server.address)
        await again.auth(user.access_token)
    finally:
        await server.stop(5)


def test_the_connection_limit_comes_from_settings(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"tcp_max_connections": 3})
    (server,) = build_servers(dataclasses.replace(runtime, settings=settings), ["tcp"])
    assert isinstance(server, TcpServer) and server.config.max_connections == 3


# --- timers, slow readers, shutdown -----------------------------------------------------------


async def test_no_auth_in_time_closes_and_idle_sessions_are_closed(
    runtime: Runtime, make_user: MakeUser, connect: Connect
) -> None:
    user = await make_user()
    server = await start_tcp(runtime, auth_timeout=0.3, idle_timeout=0.6)
    try:
        silent = await connect(server.address)
        started = time.monotonic()
        error = await silent.recv()
        assert error["code"] == "unauthorized"
        await silent.expect_closed()
        assert 0.25 < time.monotonic() - started < 3

        idle = await connect(server.address)
        await idle.auth(user.access_token)
        for _ in range(3):  # traffic keeps it open past the idle limit
            await asyncio.sleep(0.3)
            await idle.send({"type": "ping"})
            assert (await idle.recv())["type"] == "pong"
        started = time.monotonic()
        await idle.expect_closed()
        assert 0.4 < time.monotonic() - started < 3
    finally:
        await server.stop(5)


async def test_slow_reader_is_dropped_without_delaying_others(
    runtime: Runtime, make_user: MakeUser, connect: Connect
) -> None:
    # An in-process bus on both backends: the test publishes thousands of events fast.
    bus = MemoryBus()
    server = await start_tcp(dataclasses.replace(runtime, bus=bus), send_buffer=256 * 1024)
    user = await make_user()
    try:
        slow = await connect(server.address, rcvbuf=4096)
        await slow.auth(user.access_token)
        fast = await connect(server.address)
        await fast.auth(user.access_token)
        received = 0
        total = 3000
        data = {
            "manga_id": 1,
            "chapter": 1.0,
            "status": "reading",
            "updated_at": "2024-01-01T00:00:00Z",
            "device": "d" * 8000,  # big pushes fill the slow reader's buffers sooner
        }

        async def read_fast() -> None:
            nonlocal received
            while received < total:
                message = await fast.recv()
                assert message["type"] == "progress"
                received += 1

        reader = asyncio.create_task(read_fast())
        for version in range(1, total + 1):
            await bus.publish(
                f"progress:{user.id}", {"type": "progress", "data": {**data, "version": version}}
            )
            if version % 50 == 0:
                await asyncio.sleep(0.001)  # let the writers run, as real traffic would
        async with asyncio.timeout(20):
            await reader
        assert received == total
        assert server.connection_count == 1  # the slow one was dropped
        # Whatever it had been sent before the drop (the last line cut short), then the end.
        with pytest.raises((EOFError, ConnectionResetError, orjson.JSONDecodeError)):
            while True:
                await slow.recv(5)
    finally:
        await server.stop(5)


async def test_graceful_stop_acks_in_flight_updates_then_says_unavailable(
    runtime: Runtime, make_user: MakeUser, manga_ids: list[int], connect: Connect
) -> None:
    user = await make_user()
    server = await start_tcp(runtime)
    line = await connect(server.address)
    await line.auth(user.access_token)
    burst = b"".join(
        orjson.dumps(
            {"type": "progress_update", "id": i, "data": {"manga_id": manga_ids[i], "chapter": 1}}
        )
        + b"\n"
        for i in range(20)
    )
    await line.send(burst)
    await asyncio.sleep(0.05)  # the server has read the burst
    address = server.address
    await server.stop(10)
    messages = []
    while True:
        try:
            messages.append(await line.recv())
        except EOFError:
            break
    acked = [m["id"] for m in messages if m["type"] == "ack"]
    assert acked == list(range(len(acked))) and len(acked) == 20
    assert messages[-1] == {
        "type": "error",
        "code": "unavailable",
        "message": "server shutting down",
    }
    with pytest.raises(OSError):
        await Line.open(address)


async def test_group_commit_shares_transactions_between_connections(
    runtime: Runtime, make_user: MakeUser, manga_ids: list[int], connect: Connect
) -> None:
    server = await start_tcp(runtime)
    try:
        users = [await make_user() for _ in range(4)]
        lines = []
        for user in users:
            for _ in range(2):
                line = await connect(server.address)
                await line.auth(user.access_token)
                lines.append(line)
        for n, line in enumerate(lines):
            line.writer.write(
                b"".join(
                    orjson.dumps(
                        {
                            "type": "progress_update",
                            "id": f"{n}-{i}",
                            "data": {"manga_id": manga_ids[i], "chapter": n},
                        }
                    )
                    + b"\n"
                    for i in range(25)
                )
            )
        for line in lines:
            got = 0
            while got < 25:
                message = await line.recv(10)
                got += message["type"] == "ack"
        writes, transactions = server.batcher.writes, server.batcher.transactions
        assert writes == 200
        assert transactions < writes / 2, (transactions, writes)
    finally:
        await server.stop(5)


async def test_run_servers_starts_the_tcp_part(
    runtime: Runtime, make_user: MakeUser, connect: Connect
) -> None:
    settings = runtime.settings.model_copy(update={"tcp_port": 0, "host": "127.0.0.1"})
    user = await make_user()
    async with run_servers(dataclasses.replace(runtime, settings=settings), ["tcp"]) as running:
        [server] = running.servers
        assert isinstance(server, TcpServer) and server.name == "tcp"
        line = await connect(running.address("tcp"))
        await line.auth(user.access_token)
        await line.send({"type": "ping"})
        assert (await line.recv())["type"] == "pong"


# --- the client library ----------------------------------------------------------------------


async def test_client_updates_pushes_sync_and_ping(
    tcp_server: TcpServer, make_user: MakeUser, manga_ids: list[int]
) -> None:
    user = await make_user()
    host, port = tcp_server.address
    async with (
        ProgressClient(host, port, user.access_token, device="a") as a,
        ProgressClient(host, port, user.access_token, device="b") as b,
    ):
        stored = await a.update(manga_ids[3], 4.5, "reading", timeout=10)
        assert stored["chapter"] == 4.5 and stored["device"] == "a"
        assert await b.next_progress(5) == stored
        assert a.last_version == stored["version"] == b.last_version
        rows = await b.sync(0)
        assert rows == [stored]
        assert (await a.ping()).endswith("Z")
        with pytest.raises(ProgressSyncError) as info:
            await a.update(2_000_000_000, 1, timeout=10)
        assert info.value.code in ("not_found", "validation_error")


async def test_client_reconnects_and_catches_up_with_sync(
    runtime: Runtime, make_user: MakeUser, manga_ids: list[int], connect: Connect
) -> None:
    from mangahub.tcp.client import Backoff

    user = await make_user()
    server = await start_tcp(runtime)
    host, port = server.address
    watcher = ProgressClient(host, port, user.access_token, backoff=Backoff(0.05, 0.2))
    await watcher.connect()
    writer = await connect(server.address)
    await writer.auth(user.access_token, "other")
    try:
        # Drop the watcher's connection from the server side; write while it is away.
        [conn] = [c for c in server._connections if c.session_id == watcher.session_id]
        conn.abort("test")
        await writer.update("w", manga_ids[4], 42)
        written = (await writer.recv())["progress"]
        async with asyncio.timeout(10):
            while watcher.connections < 2:
                await asyncio.sleep(0.02)
        # Catch-up by sync delivers what it missed.
        assert (await watcher.next_progress(5))["version"] == written["version"]
        stored = await watcher.update(manga_ids[4], 43, timeout=10)
        assert stored["version"] > written["version"]
    finally:
        await watcher.close()
        await server.stop(5)


async def test_client_with_a_bad_token_fails_to_connect(tcp_server: TcpServer) -> None:
    host, port = tcp_server.address
    client = ProgressClient(host, port, "bad-token")
    with pytest.raises(ProgressSyncError) as info:
        await client.connect()
    assert info.value.code == "unauthorized"
    await client.close()


async def test_stop_timeout_aborts_a_connection_that_cannot_finish(
    runtime: Runtime, make_user: MakeUser, connect: Connect
) -> None:
    bus = MemoryBus()
    server = await start_tcp(dataclasses.replace(runtime, bus=bus), send_buffer=1 << 30)
    user = await make_user()
    line = await connect(server.address, rcvbuf=4096)
    await line.auth(user.access_token)
    data = {"manga_id": 1, "chapter": 1.0, "status": "reading", "version": 1}
    data |= {"updated_at": "2024-01-01T00:00:00Z", "device": "d" * 4000}
    for n in range(3000):  # ~12 MB the peer never reads: the goodbye cannot be flushed
        await bus.publish(f"progress:{user.id}", {"type": "progress", "data": data})
        if n % 100 == 0:
            await asyncio.sleep(0.001)
    started = time.monotonic()
    await server.stop(0.5)
    assert time.monotonic() - started < 3
    assert server.connection_count == 0
