"""UpdateProgress: identity from the bearer token only, the write is stored and pushed
to the user's TCP sessions, bad input and bad tokens get their codes."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from mangahub.app import Runtime
from mangahub.domain.enums import Role
from mangahub.domain.errors import NotFound
from mangahub.security.tokens import Principal, TokenCodec
from mangahub.tcp.client import ProgressClient
from mangahub.tcp.server import TcpServer
from mangahub.v1 import manga_pb2, manga_pb2_grpc
from tests.conftest import MakeUser, UserSession
from tests.grpcapi.conftest import bearer


async def _error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


def _principal(user: UserSession) -> Principal:
    return Principal(uuid.UUID(user.id), user.username, user.email, Role.USER)


def _secret(runtime: Runtime) -> str:
    assert runtime.settings.jwt_secret is not None
    return runtime.settings.jwt_secret.get_secret_value()


@pytest.fixture(scope="module")
async def tcp_server(runtime: Runtime) -> AsyncIterator[TcpServer]:
    server = TcpServer(runtime, "127.0.0.1", 0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(5)


async def test_update_progress_stores_for_the_token_user(
    stub: manga_pb2_grpc.MangaServiceStub, runtime: Runtime, make_user: MakeUser, roomy_manga: int
) -> None:
    user, other = await make_user("grpc"), await make_user("other")

    reply = await stub.UpdateProgress(
        manga_pb2.ProgressUpdateRequest(manga_id=roomy_manga, chapter=12.5, status="Reading"),
        metadata=bearer(user),
        timeout=10,
    )

    assert reply.success and reply.message
    progress = reply.progress
    assert (progress.manga_id, progress.chapter, progress.status) == (roomy_manga, 12.5, "reading")
    assert progress.device == "grpc" and progress.version >= 1
    updated = progress.updated_at.ToDatetime(tzinfo=UTC)
    assert abs(updated - datetime.now(UTC)) < timedelta(minutes=1)
    stored = await runtime.reading_list.get(uuid.UUID(user.id), roomy_manga)
    assert (stored.chapter, stored.version, stored.device) == (12.5, progress.version, "grpc")
    with pytest.raises(NotFound):
        await runtime.reading_list.get(uuid.UUID(other.id), roomy_manga)

    again = await stub.UpdateProgress(
        manga_pb2.ProgressUpdateRequest(
            manga_id=roomy_manga, chapter=13, status="completed", device="e-reader"
        ),
        metadata=bearer(user),
        timeout=10,
    )
    assert again.progress.version > progress.version
    assert (again.progress.status, again.progress.device) == ("completed", "e-reader")


async def test_update_progress_writes_the_one_entry(
    stub: manga_pb2_grpc.MangaServiceStub, runtime: Runtime, make_user: MakeUser, roomy_manga: int
) -> None:
    """A request without status or volume (what older clients send) keeps the entry's;
    the reply carries the rest of the entry."""
    user = await make_user("entry")
    user_id = uuid.UUID(user.id)
    await runtime.reading_list.add(user_id, roomy_manga, {"status": "on_hold", "score": 8})
    reply = await stub.UpdateProgress(
        manga_pb2.ProgressUpdateRequest(manga_id=roomy_manga, chapter=5, volume=2),
        metadata=bearer(user),
        timeout=10,
    )
    entry = reply.progress
    assert (entry.status, entry.chapter, entry.volume, entry.score) == ("on_hold", 5, 2, 8)
    assert entry.HasField("score") and not entry.HasField("finished_on")
    assert entry.title and entry.rereads == 0 and not entry.rereading
    assert entry.added_at.ToDatetime(tzinfo=UTC) <= entry.updated_at.ToDatetime(tzinfo=UTC)
    old_client = await stub.UpdateProgress(
        manga_pb2.ProgressUpdateRequest(manga_id=roomy_manga, chapter=6),
        metadata=bearer(user),
        timeout=10,
    )
    assert (old_client.progress.status, old_client.progress.volume) == ("on_hold", 2)
    stored = await runtime.reading_list.get(user_id, roomy_manga)
    assert (stored.chapter, stored.volume, stored.status) == (6, 2, "on_hold")


async def test_update_progress_is_pushed_to_the_users_tcp_session(
    stub: manga_pb2_grpc.MangaServiceStub,
    tcp_server: TcpServer,
    make_user: MakeUser,
    roomy_manga: int,
) -> None:
    user, stranger = await make_user("pushed"), await make_user("stranger")
    host, port = tcp_server.address
    async with (
        ProgressClient(host, port, user.access_token, device="laptop") as laptop,
        ProgressClient(host, port, stranger.access_token, device="phone") as nosy,
    ):
        reply = await stub.UpdateProgress(
            manga_pb2.ProgressUpdateRequest(manga_id=roomy_manga, chapter=42, device="tablet"),
            metadata=bearer(user),
            timeout=10,
        )
        push = await laptop.next_progress(timeout=5)
        assert push["manga_id"] == roomy_manga
        assert push["chapter"] == 42
        assert push["version"] == reply.progress.version
        assert push["device"] == "tablet"
        # The push is the whole entry, series summary included.
        assert push["status"] == "reading" and push["manga"]["id"] == roomy_manga
        assert {"volume", "score", "started_on", "rereads", "notes", "added_at"} <= set(push)
        await asyncio.sleep(0.2)
        assert nosy.progress_nowait() == []


@pytest.mark.parametrize(
    ("chapter", "status"),
    [
        (math.nan, "reading"),
        (math.inf, "reading"),
        (-1.0, "reading"),
        (100_001.0, "reading"),
        (3.0, "bogus"),
        (3.0, "x" * 10_000),
    ],
    ids=["nan", "inf", "negative", "huge", "bad-status", "long-status"],
)
async def test_bad_progress_is_invalid_argument(
    stub: manga_pb2_grpc.MangaServiceStub,
    make_user: MakeUser,
    roomy_manga: int,
    chapter: float,
    status: str,
) -> None:
    user = await make_user("bad")
    error = await _error(
        stub.UpdateProgress(
            manga_pb2.ProgressUpdateRequest(manga_id=roomy_manga, chapter=chapter, status=status),
            metadata=bearer(user),
            timeout=10,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "chapter" in error.details() or "status" in error.details()


async def test_chapter_beyond_the_series_and_long_device_are_invalid(
    stub: manga_pb2_grpc.MangaServiceStub, make_user: MakeUser, short_manga: tuple[int, int]
) -> None:
    user = await make_user("beyond")
    manga_id, total = short_manga
    beyond = await _error(
        stub.UpdateProgress(
            manga_pb2.ProgressUpdateRequest(manga_id=manga_id, chapter=total + 1),
            metadata=bearer(user),
            timeout=10,
        )
    )
    assert beyond.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"below {total + 1}" in beyond.details()
    long_device = await _error(
        stub.UpdateProgress(
            manga_pb2.ProgressUpdateRequest(manga_id=manga_id, chapter=1, device="d" * 101),
            metadata=bearer(user),
            timeout=10,
        )
    )
    assert long_device.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("manga_id", "code"),
    [
        (0, grpc.StatusCode.INVALID_ARGUMENT),
        (-3, grpc.StatusCode.INVALID_ARGUMENT),
        (2**31 - 2, grpc.StatusCode.NOT_FOUND),
        (2**62, grpc.StatusCode.NOT_FOUND),
    ],
)
async def test_progress_for_unknown_manga(
    stub: manga_pb2_grpc.MangaServiceStub,
    make_user: MakeUser,
    manga_id: int,
    code: grpc.StatusCode,
) -> None:
    user = await make_user("unknown")
    error = await _error(
        stub.UpdateProgress(
            manga_pb2.ProgressUpdateRequest(manga_id=manga_id, chapter=1),
            metadata=bearer(user),
            timeout=10,
        )
    )
    assert error.code() == code


async def test_missing_garbage_expired_or_foreign_tokens_are_unauthenticated(
    stub: manga_pb2_grpc.MangaServiceStub, runtime: Runtime, make_user: MakeUser, roomy_manga: int
) -> None:
    user = await make_user("tokens")
    principal = _principal(user)
    expired = TokenCodec(_secret(runtime), -60).issue(principal)
    foreign = TokenCodec("another-secret-that-is-long-enough-to-use", 900).issue(principal)
    request = manga_pb2.ProgressUpdateRequest(manga_id=roomy_manga, chapter=1)
    cases: list[tuple[tuple[tuple[str, str], ...], str]] = [
        ((), "missing"),
        ((("authorization", "Bearer not-a-jwt"),), "invalid"),
        ((("authorization", f"Basic {user.access_token}"),), "Bearer"),
        ((("authorization", "Bearer"),), "Bearer"),
        (bearer(expired), "expired"),
        (bearer(foreign), "invalid"),
        (bearer("x" * 5000), "invalid"),
        (bearer(user) + bearer(user), "more than one"),
    ]
    for metadata, words in cases:
        error = await _error(stub.UpdateProgress(request, metadata=metadata, timeout=10))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, metadata
        assert words in error.details(), (metadata, error.details())
    with pytest.raises(NotFound):
        await runtime.reading_list.get(uuid.UUID(user.id), roomy_manga)


async def test_the_bearer_scheme_is_case_insensitive(
    stub: manga_pb2_grpc.MangaServiceStub, make_user: MakeUser, roomy_manga: int
) -> None:
    user = await make_user("scheme")
    reply = await stub.UpdateProgress(
        manga_pb2.ProgressUpdateRequest(manga_id=roomy_manga, chapter=2),
        metadata=(("authorization", f"bearer {user.access_token}"),),
        timeout=10,
    )
    assert reply.success
