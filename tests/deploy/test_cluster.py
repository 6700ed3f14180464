"""The one-host cluster (``scripts/cluster.py``): every part as its own process on a
shared PostgreSQL and Redis. Progress, chat and notifications cross processes, and
SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest

from mangahub.app import Runtime
from mangahub.servers import PARTS
from mangahub.v1 import manga_pb2, manga_pb2_grpc
from tests.conftest import ADMIN_PASSWORD, BACKEND, Backend, MakeUser
from tests.live_server import TEST_LIMITS
from tests.tcp.conftest import Line
from tests.udp.conftest import UdpClient, follow, new_series
from tests.ws.conftest import open_client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BACKEND != "postgres",
        reason="a cluster needs PostgreSQL + Redis (MANGAHUB_TEST_BACKEND=postgres)",
    ),
]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cluster.py"
ENDPOINT = re.compile(r"^cluster (\w+)#(\d+) (\w+) ([\d.]+):(\d+)$")
RUNNING = re.compile(r"^cluster (\w+)#(\d+) running$")  # a part without a listener
Address = tuple[str, int]


@dataclass
class Cluster:
    process: subprocess.Popen[str]
    endpoints: dict[tuple[str, int, str], Address] = field(default_factory=dict)
    running: set[tuple[str, int]] = field(default_factory=set)
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def at(self, part: str, index: int, listener: str) -> Address:
        return self.endpoints[(part, index, listener)]

    def members(self) -> set[tuple[str, int]]:
        return {(part, index) for part, index, _ in self.endpoints} | self.running


def start_cluster(backend: Backend, *extra: str) -> Cluster:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANGAHUB_")}
    env.update(
        MANGAHUB_BCRYPT_ROUNDS="10",
        MANGAHUB_ADMIN_PASSWORD=ADMIN_PASSWORD,
        MANGAHUB_LOG_LEVEL="WARNING",
        MANGAHUB_MANGADEX_ENABLED="false",  # the sync part stays offline
        MANGAHUB_ANILIST_ENABLED="false",
        **{f"MANGAHUB_{name}": value for name, value in TEST_LIMITS.items()},
    )
    assert backend.database_url and backend.redis_url
    process = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "--database-url",
            backend.database_url,
            "--redis-url",
            backend.redis_url,
            "--redis-namespace",
            backend.redis_namespace,
            "--data-dir",
            str(backend.data_dir),
            "--base-port",
            "0",
            "--no-seed",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    cluster = Cluster(process)
    ready = threading.Event()

    assert process.stdout is not None

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            cluster.output.append(line)
            match = ENDPOINT.match(line)
            if match:
                key = (match[1], int(match[2]), match[3])
                cluster.endpoints[key] = (match[4], int(match[5]))
            elif running := RUNNING.match(line):
                cluster.running.add((running[1], int(running[2])))
            if line.startswith("cluster ready"):
                ready.set()
        ready.set()

    cluster.reader = threading.Thread(target=pump, daemon=True)
    cluster.reader.start()
    if not ready.wait(120) or process.poll() is not None:
        process.kill()
        process.wait()
        cluster.reader.join(10)
        process.stdout.close()
        raise RuntimeError("cluster did not start:\n" + "\n".join(cluster.output[-60:]))
    return cluster


def child_pids(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@contextlib.asynccontextmanager
async def cluster_running(backend: Backend, *extra: str) -> AsyncIterator[Cluster]:
    cluster = await asyncio.to_thread(start_cluster, backend, *extra)
    try:
        yield cluster
    finally:
        if cluster.process.poll() is None:
            cluster.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(cluster.process.wait, 60)
            except subprocess.TimeoutExpired:
                cluster.process.kill()
                raise
        if cluster.reader is not None:
            await asyncio.to_thread(cluster.reader.join, 10)
        if cluster.process.stdout is not None:
            cluster.process.stdout.close()


async def test_parts_as_processes_share_progress_chat_and_notifications(
    backend: Backend,
    runtime: Runtime,
    client: httpx.AsyncClient,
    make_user: MakeUser,
) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    manga_id, title = await new_series(runtime)
    room = manga_id  # its chat room
    await follow(client, bob, manga_id)
    assert runtime.settings.internal_token is not None
    internal = runtime.settings.internal_token.get_secret_value()

    async with cluster_running(backend, "--scale", "udp=2") as cluster:
        expected = {(p, 1) for p in PARTS} | {("api", 2), ("tcp", 2), ("udp", 2)}
        assert cluster.members() == expected, cluster.output[-30:]
        ports = [address[1] for address in cluster.endpoints.values() if address[1]]
        assert len(set(ports)) == len(ports), "every process listens on its own ports"
        children = child_pids(cluster.process.pid)
        assert len(children) == len(expected)

        # Progress: written over TCP on tcp#1, pushed over TCP on tcp#2 and WS on api#2.
        laptop = await Line.open(cluster.at("tcp", 1, "tcp"))
        phone = await Line.open(cluster.at("tcp", 2, "tcp"))
        browser = await open_client(cluster.at("api", 2, "http"), token=alice.access_token)
        bob_ws = await open_client(cluster.at("api", 2, "http"), token=bob.access_token)
        alice_ws = await open_client(cluster.at("api", 1, "http"), token=alice.access_token)
        udp = await UdpClient.open(cluster.at("udp", 2, "udp"))
        try:
            await laptop.auth(alice.access_token, device="laptop")
            await phone.auth(alice.access_token, device="phone")
            # A round trip: the browser's connection (and its progress feed) is registered.
            await browser.roundtrip()
            await laptop.update("u1", manga_id, 7)
            ack = await laptop.recv_type("ack", 10)
            assert await phone.recv_type("progress", 10) == {
                "type": "progress",
                "data": ack["progress"],
            }
            pushed = await browser.recv_type("progress", 10)
            assert pushed["data"]["manga_id"] == manga_id
            assert pushed["data"]["chapter"] == 7

            # gRPC: an update through the grpc process reaches the TCP session on tcp#2.
            host, port = cluster.at("grpc", 1, "grpc")
            async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
                reply = await manga_pb2_grpc.MangaServiceStub(channel).UpdateProgress(
                    manga_pb2.ProgressUpdateRequest(manga_id=manga_id, chapter=7.5),
                    metadata=(("authorization", f"Bearer {alice.access_token}"),),
                    timeout=10,
                )
            assert reply.success
            pushed = await phone.recv_type("progress", 10)
            assert (pushed["data"]["chapter"], pushed["data"]["device"]) == (7.5, "grpc")

            # Chat: alice on api#1, bob on api#2.
            for ws in (alice_ws, bob_ws):
                await ws.send({"type": "join", "room_id": room})
                await ws.recv_type("history", 10)  # after alice's progress push, maybe
            await alice_ws.chat(room, "hi from api#1")
            heard = await bob_ws.recv_type("chat", 10)
            assert (heard["username"], heard["content"]) == (alice.username, "hi from api#1")
            await bob_ws.chat(room, "hi from api#2")
            got = await alice_ws.recv_until(lambda m: m.get("content") == "hi from api#2", 10)
            assert got["username"] == bob.username

            # Notifications: triggered on udp#1, delivered by udp#2.
            await udp.subscribe(bob.access_token)
            host, port = cluster.at("udp", 1, "trigger")
            async with httpx.AsyncClient(
                base_url=f"http://{host}:{port}", headers={"X-Internal-Token": internal}
            ) as trigger:
                r = await trigger.post(
                    "/notify/new-chapter",
                    json={"manga_id": manga_id, "title": title, "chapter": 8, "old_chapter": 7},
                )
            assert r.status_code == 202, r.text
            [note] = await udp.notifications(1, timeout=10)
            assert (note["manga_id"], note["chapter"]) == (manga_id, 8)
        finally:
            udp.close()
            await laptop.close()
            await phone.close()
            for ws in (browser, bob_ws, alice_ws):
                await ws.close()

        cluster.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(cluster.process.wait, 60) == 0, cluster.output[-30:]
    assert cluster.output[-1] == "cluster: stopped"
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]


async def test_a_dying_member_stops_the_cluster_with_an_error(backend: Backend) -> None:
    only_api = [f"--scale={part}=0" for part in PARTS if part != "api"]
    async with cluster_running(backend, "--scale=api=2", *only_api) as cluster:
        assert cluster.members() == {("api", 1), ("api", 2)}
        children = child_pids(cluster.process.pid)
        assert len(children) == 2
        os.kill(children[0], signal.SIGKILL)
        assert await asyncio.to_thread(cluster.process.wait, 60) == 1
    assert any("exited with -9; stopping all" in line for line in cluster.output)
    assert cluster.output[-1] == "cluster: stopped"
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
