"""Fixtures for the gRPC door: a server on 127.0.0.1:0 over the session runtime, an
aio channel with the generated stub, and manga to write progress for."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import or_, select

from mangahub.app import Runtime
from mangahub.grpcapi.server import GrpcServer
from mangahub.storage.models import Manga
from mangahub.v1 import manga_pb2_grpc
from tests.conftest import UserSession

Address = tuple[str, int]


def target(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


def bearer(user: UserSession | str) -> tuple[tuple[str, str], ...]:
    token = user if isinstance(user, str) else user.access_token
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="session")
def grpc_registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(scope="session")
async def grpc_server(
    runtime: Runtime, grpc_registry: CollectorRegistry
) -> AsyncIterator[GrpcServer]:
    server = GrpcServer(runtime, "127.0.0.1", 0, registry=grpc_registry)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(5)


@pytest.fixture(scope="session")
async def channel(grpc_server: GrpcServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(target(grpc_server.address)) as ch:
        yield ch


@pytest.fixture(scope="session")
def stub(channel: grpc.aio.Channel) -> manga_pb2_grpc.MangaServiceStub:
    return manga_pb2_grpc.MangaServiceStub(channel)


@pytest.fixture(scope="session")
async def roomy_manga(runtime: Runtime) -> int:
    """A series that takes any chapter up to 1000 (unknown or long length)."""
    roomy = or_(Manga.total_chapters.is_(None), Manga.total_chapters >= 1000)
    async with runtime.db.session() as session:
        found = await session.scalar(select(Manga.id).where(roomy).order_by(Manga.id).limit(1))
        if found is not None:
            return int(found)
        row = Manga(slug=f"grpc-test-{uuid.uuid4().hex[:10]}", title="gRPC test", status="ongoing")
        session.add(row)
        await session.flush()
        return int(row.id)


@pytest.fixture(scope="session")
async def short_manga(runtime: Runtime) -> tuple[int, int]:
    """``(id, total_chapters)`` of a series with a known, small chapter count."""
    async with runtime.db.session() as session:
        row = Manga(
            slug=f"grpc-short-{uuid.uuid4().hex[:10]}",
            title="gRPC short series",
            status="completed",
            total_chapters=12,
        )
        session.add(row)
        await session.flush()
        return int(row.id), 12
