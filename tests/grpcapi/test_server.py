"""The server around the service: reflection (a client with no generated code),
health, the deadline handed to federated search, and a graceful drain."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from mangahub.app import Runtime
from mangahub.domain.schemas import FederatedResults
from mangahub.grpcapi.server import SERVICE_NAME, GrpcServer
from mangahub.services.federated import FederatedSearch
from mangahub.v1 import manga_pb2, manga_pb2_grpc
from tests.grpcapi.conftest import Address, target

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def call_get_manga_by_reflection(address: Address, manga_id: int) -> tuple[list[str], Any]:
    """List the services and call GetManga knowing nothing but what reflection says
    (blocking: runs in a thread, the server shares the test's event loop)."""
    with grpc.insecure_channel(target(address)) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = list(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName("mangahub.v1.MangaService")
        method = service.methods_by_name["GetManga"]
        request_type = message_factory.GetMessageClass(method.input_type)
        reply_type = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            f"/{service.full_name}/{method.name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=reply_type.FromString,
        )
        reply = call(request_type(id=manga_id), timeout=10)
        return services, reply


async def test_reflection_alone_is_enough_to_call_get_manga(
    grpc_server: GrpcServer, runtime: Runtime
) -> None:
    expected = await runtime.catalog.get_manga(1)
    services, reply = await asyncio.to_thread(call_get_manga_by_reflection, grpc_server.address, 1)
    assert "mangahub.v1.MangaService" in services
    assert "grpc.health.v1.Health" in services
    assert not isinstance(reply, manga_pb2.Manga)  # built from reflected descriptors
    assert reply.DESCRIPTOR.full_name == "mangahub.v1.Manga"
    assert (reply.id, reply.title, reply.status) == (1, expected.title, expected.status.value)
    assert list(reply.genres) == expected.genres


async def test_health_reports_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE_NAME):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == SERVING, service
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await health.Check(health_pb2.HealthCheckRequest(service="nope.Nothing"), timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


class SlowSearch(FederatedSearch):
    """The real federated search, after a pause, remembering the budget it was given."""

    def __init__(self, inner: FederatedSearch, pause: float) -> None:
        self._inner = inner
        self.pause = pause
        self.timeouts: list[float | None] = []
        self.started = asyncio.Event()

    async def search(
        self,
        query: str,
        *,
        limit: int = 20,
        offset: int = 0,
        sources: Sequence[str] = (),
        timeout: float | None = None,
        anonymous_from: str | None = None,
    ) -> FederatedResults:
        self.timeouts.append(timeout)
        self.started.set()
        await asyncio.sleep(self.pause)
        return await self._inner.search(
            query, limit=limit, offset=offset, sources=sources, timeout=timeout
        )


async def test_the_call_deadline_is_the_search_budget(runtime: Runtime) -> None:
    search = SlowSearch(runtime.federated, pause=0)
    server = GrpcServer(dataclasses.replace(runtime, federated=search), "127.0.0.1", 0)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(target(server.address)) as channel:
            stub = manga_pb2_grpc.MangaServiceStub(channel)
            await stub.SearchManga(manga_pb2.SearchMangaRequest(query="one"), timeout=3)
            await stub.SearchManga(manga_pb2.SearchMangaRequest(query="one"))
    finally:
        await server.stop(5)
    with_deadline, without = search.timeouts
    # Anything near 3 s proves the deadline won over the 10 s budget (how much of it is
    # left depends on how busy the machine is; the timeout sent on the wire is rounded
    # up to its unit, so the server may see a few milliseconds more than 3 s).
    assert with_deadline is not None and 0 < with_deadline <= 3.1
    assert without == server.config.search_budget


async def test_stop_drains_calls_in_flight_and_turns_health_not_serving(
    runtime: Runtime,
) -> None:
    search = SlowSearch(runtime.federated, pause=0.5)
    server = GrpcServer(dataclasses.replace(runtime, federated=search), "127.0.0.1", 0)
    await server.start()
    async with grpc.aio.insecure_channel(target(server.address)) as channel:
        stub = manga_pb2_grpc.MangaServiceStub(channel)
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10
        )
        assert (await watch.read()).status == SERVING
        in_flight = asyncio.ensure_future(
            stub.SearchManga(manga_pb2.SearchMangaRequest(query="one", limit=2), timeout=10)
        )
        await asyncio.wait_for(search.started.wait(), 5)
        stopping = asyncio.create_task(server.stop(60))
        assert (await watch.read()).status == NOT_SERVING
        reply = await in_flight  # finished, not cut off
        assert len(reply.results) == 2
        # The open health watch does not hold the shutdown for the whole grace period.
        await asyncio.wait_for(stopping, 20)
        with pytest.raises(grpc.aio.AioRpcError):
            await watch.read()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetManga(manga_pb2.GetMangaRequest(id=1), timeout=2)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_taken_port_is_an_error(grpc_server: GrpcServer, runtime: Runtime) -> None:
    second = GrpcServer(runtime, "127.0.0.1", grpc_server.address[1])
    with pytest.raises(OSError):
        await second.start()
