"""Anonymous federated searches that ask an external source are limited per client
address, on HTTP and gRPC alike (signed-in callers are not); and searches can never
take the share of the MangaDex rate kept for the sync jobs."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from mangahub.app import Runtime
from mangahub.grpcapi.server import GrpcServer
from mangahub.http.app import create_app
from mangahub.servers import HttpServer
from mangahub.services.federated import FederatedSearch
from mangahub.sources.mangadex import MangaDexClient
from mangahub.v1 import manga_pb2, manga_pb2_grpc
from tests.conftest import MakeUser
from tests.fakes.sources import FakeSources
from tests.sources.conftest import FAST_RETRY, SOURCE_DEADLINE, ScopedCache

PER_MINUTE = 2


@pytest.fixture
def strict_runtime(
    runtime: Runtime, scoped_cache: ScopedCache, mangadex: MangaDexClient
) -> Runtime:
    federated = FederatedSearch(
        runtime.catalog,
        scoped_cache,
        [mangadex],
        source_timeout=SOURCE_DEADLINE,
        anonymous_per_minute=PER_MINUTE,
    )
    return dataclasses.replace(runtime, federated=federated)


@pytest.fixture
async def http_url(strict_runtime: Runtime) -> AsyncIterator[str]:
    server = HttpServer(strict_runtime, "127.0.0.1", 0, app=create_app(strict_runtime))
    await server.start()
    try:
        yield f"http://{server.address[0]}:{server.address[1]}"
    finally:
        await server.stop(2)


async def test_anonymous_http_source_searches_are_limited_per_address(
    http_url: str, make_user: MakeUser
) -> None:
    user = await make_user("fedthrottle")
    async with httpx.AsyncClient(base_url=http_url, timeout=10) as client:
        params = {"q": "dandadan", "sources": "local,mangadex"}
        for _ in range(PER_MINUTE):
            assert (await client.get("/api/manga/federated", params=params)).status_code == 200
        refused = await client.get("/api/manga/federated", params=params)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # The local catalog alone spends no source budget.
        local = await client.get(
            "/api/manga/federated", params={"q": "dandadan", "sources": "local"}
        )
        assert local.status_code == 200
        # A signed-in caller is not counted against the address.
        signed_in = await client.get(
            "/api/manga/federated",
            params=params,
            headers={"Authorization": f"Bearer {user.access_token}"},
        )
        assert signed_in.status_code == 200


async def test_anonymous_grpc_source_searches_are_limited_per_address(
    strict_runtime: Runtime, make_user: MakeUser
) -> None:
    user = await make_user("fedgrpc")
    server = GrpcServer(strict_runtime, "127.0.0.1", 0)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.address[1]}") as channel:
            stub = manga_pb2_grpc.MangaServiceStub(channel)
            request = manga_pb2.SearchMangaRequest(query="dandadan", sources=["mangadex"])
            for _ in range(PER_MINUTE):
                await stub.SearchManga(request, timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.SearchManga(request, timeout=10)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            trailers = dict(info.value.trailing_metadata() or ())
            assert 1 <= int(trailers["retry-after"]) <= 60
            token = (("authorization", f"Bearer {user.access_token}"),)
            await stub.SearchManga(request, metadata=token, timeout=10)
    finally:
        await server.stop(2)


async def test_searches_leave_the_sync_reserve_of_the_mangadex_rate(fake: FakeSources) -> None:
    # One token per 100 s: whatever is not taken at once waits far beyond this test.
    async with MangaDexClient(
        fake.mangadex_url, rate_per_second=0.01, burst=10, retry=FAST_RETRY, sync_reserve=0.4
    ) as client:
        for _ in range(6):  # searches get 60 % of the burst...
            await asyncio.wait_for(client.search("dandadan", limit=5), 5)
        seventh = asyncio.ensure_future(client.search("dandadan", limit=5))
        # ...and the 40 % left is still there for the sync jobs' requests.
        for _ in range(4):
            await asyncio.wait_for(client.list_manga(limit=5), 5)
        assert not seventh.done()
        seventh.cancel()
        searches = [r for r in fake.requests_to("mangadex") if r.param("title") is not None]
        assert len(searches) == 6
