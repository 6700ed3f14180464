"""The domain error tree mapped onto gRPC codes: one function, checked for every error
class; and over a real call, failures below the service get their code, never UNKNOWN."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest

from mangahub.app import Runtime
from mangahub.domain import errors
from mangahub.domain.schemas import FederatedResults
from mangahub.grpcapi.errors import ERROR_CODE_KEY, details_text, status_code, trailing_metadata
from mangahub.grpcapi.server import GrpcServer
from mangahub.services.federated import FederatedSearch
from mangahub.v1 import manga_pb2, manga_pb2_grpc
from tests.grpcapi.conftest import target

EXPECTED = {
    errors.BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ValidationFailed: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    errors.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Conflict: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.InternalError: grpc.StatusCode.INTERNAL,
    errors.MangaHubError: grpc.StatusCode.INTERNAL,
}


def test_every_domain_error_has_a_deliberate_code() -> None:
    classes = {errors.MangaHubError, *errors.MangaHubError.__subclasses__()}
    assert classes - {errors.RateLimited} == set(EXPECTED)
    for kind, code in EXPECTED.items():
        assert status_code(kind("x")) == code, kind
    limited = errors.RateLimited("slow down", retry_after=7)
    assert status_code(limited) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ("retry-after", "7") in trailing_metadata(limited)
    assert (ERROR_CODE_KEY, "rate_limited") in trailing_metadata(limited)


def test_details_name_the_fields() -> None:
    error = errors.ValidationFailed(
        "invalid progress", details=[{"field": "chapter", "message": "must be a number"}]
    )
    assert details_text(error) == "invalid progress (chapter: must be a number)"
    assert details_text(errors.NotFound("manga not found", details={"id": 3})) == (
        "manga not found"
    )


class FailingSearch(FederatedSearch):
    """A federated search whose backing store fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

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
        raise self.error


@pytest.fixture
async def failing(runtime: Runtime) -> AsyncIterator[tuple[FailingSearch, str]]:
    search = FailingSearch(RuntimeError("boom"))
    server = GrpcServer(dataclasses.replace(runtime, federated=search), "127.0.0.1", 0)
    await server.start()
    try:
        yield search, target(server.address)
    finally:
        await server.stop(5)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.Unavailable("database unavailable"), grpc.StatusCode.UNAVAILABLE),
        (RuntimeError("a bug"), grpc.StatusCode.INTERNAL),
        (TimeoutError(), grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
    ids=["unavailable", "bug", "timeout"],
)
async def test_failures_below_the_service_keep_their_code(
    failing: tuple[FailingSearch, str], error: Exception, code: grpc.StatusCode
) -> None:
    search, address = failing
    search.error = error
    async with grpc.aio.insecure_channel(address) as channel:
        stub = manga_pb2_grpc.MangaServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SearchManga(manga_pb2.SearchMangaRequest(query="one"), timeout=10)
        assert info.value.code() == code
        assert "a bug" not in (info.value.details() or "")  # internals stay in the log
        # The server is still fine for the next call.
        manga = await stub.GetManga(manga_pb2.GetMangaRequest(id=1), timeout=10)
        assert manga.id == 1
