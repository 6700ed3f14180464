"""gRPC through ``mangahub serve`` as an operator runs it: a real process, its printed
listening lines, real signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mangahub.tcp.client import ProgressClient
from mangahub.v1 import manga_pb2, manga_pb2_grpc
from tests.conftest import Backend, MakeUser
from tests.grpcapi.conftest import bearer, target
from tests.live_server import LiveServer, live_server

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def serve(env: dict[str, str], *args: str, wait_for: str) -> AsyncIterator[LiveServer]:
    """``live_server`` entered and left off the event loop."""
    manager = live_server(env, *args, wait_for=wait_for, startup_timeout=60)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


async def test_serve_grpc_alone(backend: Backend, make_user: MakeUser, roomy_manga: int) -> None:
    user = await make_user("alone")
    async with serve(backend.process_env(), "grpc", wait_for="grpc") as server:
        assert set(server.addresses) == {"grpc"}
        async with grpc.aio.insecure_channel(target(server.addresses["grpc"])) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = manga_pb2_grpc.MangaServiceStub(channel)
            manga = await stub.GetManga(manga_pb2.GetMangaRequest(id=roomy_manga), timeout=10)
            assert manga.id == roomy_manga
            saved = await stub.UpdateProgress(
                manga_pb2.ProgressUpdateRequest(manga_id=roomy_manga, chapter=3),
                metadata=bearer(user),
                timeout=10,
            )
            assert saved.success and saved.progress.chapter == 3
        code = await asyncio.to_thread(server.stop, signal.SIGTERM)
    assert code == 0
    assert "mangahub shutting down" in server.output


async def test_serve_runs_grpc_by_default_pushing_to_tcp_and_counting_in_metrics(
    backend: Backend, make_user: MakeUser, roomy_manga: int
) -> None:
    user = await make_user("everything")
    async with serve(backend.process_env(), wait_for="grpc") as server:
        assert {"http", "tcp", "grpc"} <= set(server.addresses)
        host, port = server.addresses["tcp"]
        async with (
            ProgressClient(host, port, user.access_token, device="laptop") as laptop,
            grpc.aio.insecure_channel(target(server.addresses["grpc"])) as channel,
        ):
            stub = manga_pb2_grpc.MangaServiceStub(channel)
            saved = await stub.UpdateProgress(
                manga_pb2.ProgressUpdateRequest(manga_id=roomy_manga, chapter=7.5),
                metadata=bearer(user),
                timeout=10,
            )
            push = await laptop.next_progress(timeout=10)
            assert (push["manga_id"], push["chapter"]) == (roomy_manga, 7.5)
            assert push["version"] == saved.progress.version
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
            metrics = (await http.get("/metrics")).text
        assert 'mangahub_grpc_requests_total{code="OK",method="UpdateProgress"} 1.0' in metrics
