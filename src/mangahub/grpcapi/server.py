"""The ``grpc`` part of ``mangahub serve``: MangaService, health and reflection on one
``grpc.aio`` server.

Bounds: request messages up to ``max_receive_bytes``, answers up to ``max_send_bytes``,
``max_calls_per_connection`` MangaService calls per connection and ``max_concurrent_rpcs``
in all; beyond that, calls fail fast with RESOURCE_EXHAUSTED (counted in the metrics)
instead of queueing. The HTTP/2 stream limit and gRPC's own call limit stay well above
those as a backstop: what they refuse is not counted, and clients see a refused stream
as UNAVAILABLE.

Shutdown (:meth:`GrpcServer.stop`): health turns NOT_SERVING (watchers are told),
new calls are refused, calls in flight get ``timeout`` seconds to finish, then
whatever is left is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from mangahub.app import Runtime
from mangahub.grpcapi.limits import CallLimiter
from mangahub.grpcapi.metrics import GrpcMetrics
from mangahub.grpcapi.service import MangaServicer, lenient
from mangahub.v1 import manga_pb2

SERVICE_NAME: str = manga_pb2.DESCRIPTOR.services_by_name["MangaService"].full_name


def _manga_service_handler(servicer: MangaServicer) -> Any:
    """MangaService's methods, as protoc's ``add_MangaServiceServicer_to_server`` would
    register them, except that undecodable requests reach the servicer (which answers
    INVALID_ARGUMENT) instead of failing inside gRPC as UNKNOWN."""

    def unary(behavior: Any, request: type[Message]) -> Any:
        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=lenient(request),
            response_serializer=lambda message: message.SerializeToString(),
        )

    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "GetManga": unary(servicer.GetManga, manga_pb2.GetMangaRequest),
            "SearchManga": unary(servicer.SearchManga, manga_pb2.SearchMangaRequest),
            "UpdateProgress": unary(servicer.UpdateProgress, manga_pb2.ProgressUpdateRequest),
        },
    )


@dataclass(frozen=True, slots=True)
class GrpcConfig:
    """Limits of the gRPC door."""

    max_receive_bytes: int = 64 * 1024
    max_send_bytes: int = 16 * 1024 * 1024
    max_calls_per_connection: int = 100
    max_concurrent_rpcs: int = 1000
    max_concurrent_streams: int = 10_000
    """HTTP/2 streams per connection (health watches included): the backstop."""
    search_budget: float = 10.0
    """Seconds a search may take when the caller set no (shorter) deadline."""


class GrpcServer:
    """SPEC "gRPC" as a ManagedServer."""

    name = "grpc"

    def __init__(
        self,
        runtime: Runtime,
        host: str,
        port: int,
        config: GrpcConfig | None = None,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.runtime = runtime
        self.host = host
        self.port = port
        self.config = config or GrpcConfig()
        # Tests pass a registry of their own; a server reports into the process's.
        self.metrics = GrpcMetrics(registry) if registry is not None else GrpcMetrics.for_process()
        self.health = health.aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._servicer: MangaServicer | None = None
        self._bound_port = 0
        self._stopping = False

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("grpc server is not listening")
        return self.host, self._bound_port

    async def start(self) -> None:
        config = self.config
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", config.max_receive_bytes),
                ("grpc.max_send_message_length", config.max_send_bytes),
                ("grpc.max_concurrent_streams", config.max_concurrent_streams),
                # A port in use is an error, not a second server sharing it.
                ("grpc.so_reuseport", 0),
                # Calls not yet picked up by the event loop: past the default (1000)
                # gRPC cancels them before MangaService sees them, uncounted.
                ("grpc.server.max_pending_requests", config.max_concurrent_streams),
                ("grpc.server.max_pending_requests_hard_limit", config.max_concurrent_streams),
            ],
            # Backstop only; MangaService answers (and counts) at max_concurrent_rpcs.
            maximum_concurrent_rpcs=config.max_concurrent_streams,
        )
        limiter = CallLimiter(config.max_concurrent_rpcs, config.max_calls_per_connection)
        self._servicer = servicer = MangaServicer(
            self.runtime, self.metrics, config.search_budget, limiter
        )
        server.add_generic_rpc_handlers((_manga_service_handler(servicer),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        host = f"[{self.host}]" if ":" in self.host else self.host
        try:
            self._bound_port = server.add_insecure_port(f"{host}:{self.port}")
        except RuntimeError as exc:
            raise OSError(f"grpc: cannot listen on {self.host}:{self.port}") from exc
        await server.start()
        self._server = server

    async def stop(self, timeout: float) -> None:
        """NOT_SERVING, refuse new calls, give those in flight ``timeout`` seconds."""
        if self._server is None or self._stopping:
            return
        self._stopping = True
        await self.health.enter_graceful_shutdown()  # watchers hear NOT_SERVING
        draining = asyncio.create_task(self._server.stop(grace=timeout))
        if self._servicer is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._servicer.wait_idle()
        # Health watches and reflection streams never end by themselves: once the
        # unary calls are done, cancel what is left instead of waiting out the grace.
        await self._server.stop(grace=None)
        await draining
