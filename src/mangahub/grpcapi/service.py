"""``mangahub.v1.MangaService``: checks each request, calls the same services as HTTP,
answers with the generated messages or a status code (see :mod:`.errors`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from mangahub.app import Runtime
from mangahub.domain.enums import ReadingStatus
from mangahub.domain.errors import BadRequest, MangaHubError, ValidationFailed
from mangahub.grpcapi.auth import authenticate
from mangahub.grpcapi.convert import manga_message, progress_message, search_message
from mangahub.grpcapi.errors import details_text, status_code, trailing_metadata
from mangahub.grpcapi.limits import CallLimiter, peer_host
from mangahub.grpcapi.metrics import GrpcMetrics
from mangahub.v1 import manga_pb2, manga_pb2_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=Message)

DEFAULT_LIMIT = 20
GRPC_DEVICE = "grpc"


class Undecodable:
    """What :func:`lenient` hands the servicer for bytes that are not the request
    message; gRPC would answer UNKNOWN if deserializing raised."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def lenient(message: type[M]) -> Callable[[bytes], M | Undecodable]:
    """A request deserializer that never raises (see :class:`Undecodable`)."""

    def deserialize(data: bytes) -> M | Undecodable:
        try:
            return message.FromString(data)
        except DecodeError as exc:
            return Undecodable(str(exc))

    return deserialize


def _decoded(request: M | Undecodable) -> M:
    if isinstance(request, Undecodable):
        raise BadRequest(f"malformed request message: {request.reason}")
    return request


def _problem(field: str, message: str) -> ValidationFailed:
    return ValidationFailed("invalid request", details=[{"field": field, "message": message}])


def _search_args(request: manga_pb2.SearchMangaRequest) -> tuple[str, int, int, list[str]]:
    """``(query, limit, offset, sources)`` of a search; an unset limit is the default.
    The federated search service checks them (as it does for HTTP)."""
    return request.query, request.limit or DEFAULT_LIMIT, request.offset, list(request.sources)


def _reading_status(value: str) -> ReadingStatus | None:
    if not value:
        return None
    try:
        return ReadingStatus(value.strip().lower())
    except ValueError:
        allowed = ", ".join(s.value for s in ReadingStatus)
        raise _problem("status", f"one of {allowed}") from None


class MangaServicer(manga_pb2_grpc.MangaServiceServicer):
    """The three RPCs of SPEC "gRPC"; catalog reads are public, progress needs a token."""

    def __init__(
        self,
        runtime: Runtime,
        metrics: GrpcMetrics,
        search_budget: float,
        limiter: CallLimiter | None = None,
    ) -> None:
        self._runtime = runtime
        self._limiter = limiter or CallLimiter(max_total=1000, max_per_connection=100)
        self._metrics = metrics
        self._search_budget = search_budget
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self) -> None:
        """Return once no MangaService call is running (the drain waits for this)."""
        await self._idle.wait()

    async def GetManga(
        self, raw: manga_pb2.GetMangaRequest | Undecodable, context: Any
    ) -> manga_pb2.Manga:
        async def work() -> manga_pb2.Manga:
            request = _decoded(raw)
            if request.id <= 0:
                raise _problem("id", "must be positive")
            return await self._runtime.catalog_reads.series(request.id, "grpc", manga_message)

        return await self._call("GetManga", context, work)

    async def SearchManga(
        self, raw: manga_pb2.SearchMangaRequest | Undecodable, context: Any
    ) -> manga_pb2.MangaSearchResponse:
        async def work() -> manga_pb2.MangaSearchResponse:
            request = _decoded(raw)
            query, limit, offset, sources = _search_args(request)
            # The call's deadline is the whole budget of the sources asked.
            remaining: float | None = context.time_remaining()
            budget = (
                self._search_budget if remaining is None else min(remaining, self._search_budget)
            )
            found = await self._runtime.federated.search(
                query,
                limit=limit,
                offset=offset,
                sources=sources,
                timeout=max(0.0, budget),
                anonymous_from=self._anonymous_address(context),
            )
            return search_message(found)

        return await self._call("SearchManga", context, work)

    async def UpdateProgress(
        self, raw: manga_pb2.ProgressUpdateRequest | Undecodable, context: Any
    ) -> manga_pb2.ProgressUpdateResponse:
        async def work() -> manga_pb2.ProgressUpdateResponse:
            request = _decoded(raw)
            principal = authenticate(self._runtime.tokens, context.invocation_metadata())
            if request.manga_id <= 0:
                raise _problem("manga_id", "must be positive")
            status = _reading_status(request.status)
            device = request.device if request.HasField("device") else GRPC_DEVICE
            # Same call as HTTP's PUT /api/users/progress: stored, then pushed to the
            # user's TCP and WebSocket sessions by the reading-list service.
            volume = request.volume if request.HasField("volume") else None
            progress = await self._runtime.reading_list.set_progress(
                principal.user_id,
                request.manga_id,
                request.chapter,
                volume=volume,
                status=status,
                device=device,
            )
            return manga_pb2.ProgressUpdateResponse(
                success=True, message="progress saved", progress=progress_message(progress)
            )

        return await self._call("UpdateProgress", context, work)

    def _anonymous_address(self, context: Any) -> str | None:
        """The client address of a caller without a valid token (None when signed in)."""
        try:
            authenticate(self._runtime.tokens, context.invocation_metadata())
        except MangaHubError:
            return peer_host(context.peer())
        return None

    async def _call(self, method: str, context: Any, work: Callable[[], Awaitable[T]]) -> T:
        """Run one call: domain errors become their status code, anything unexpected
        INTERNAL (never UNKNOWN); every call is counted with its code and latency."""
        start = time.perf_counter()
        peer: str = context.peer()
        if not self._limiter.admit(peer):
            self._observe(method, grpc.StatusCode.RESOURCE_EXHAUSTED, start)
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many concurrent calls")
        self._in_flight += 1
        self._idle.clear()
        try:
            try:
                result = await work()
            except MangaHubError as exc:
                failure = (status_code(exc), details_text(exc), trailing_metadata(exc))
            except TimeoutError:
                failure = (grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded", ())
            except asyncio.CancelledError:
                self._observe(method, grpc.StatusCode.CANCELLED, start)
                raise
            except Exception:
                log.exception("grpc %s failed", method)
                failure = (grpc.StatusCode.INTERNAL, "internal error", ())
            else:
                self._observe(method, grpc.StatusCode.OK, start)
                return result
            # Counted before abort() sends the status: a client that has seen a call's
            # outcome finds it in /metrics.
            code, details, trailers = failure
            self._observe(method, code, start)
            await context.abort(code, details, trailers)
            raise AssertionError("abort() raises")
        finally:
            self._limiter.release(peer)
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    def _observe(self, method: str, code: grpc.StatusCode, start: float) -> None:
        self._metrics.observe(method, code.name, time.perf_counter() - start)
