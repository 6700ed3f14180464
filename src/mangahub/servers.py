"""One lifecycle for every server: start → serve → drain with a timeout → close.

``run_servers()`` is what ``mangahub serve`` and the tests use: it starts the
requested parts on one runtime and, on exit, stops them in reverse order, each
given ``drain_timeout`` seconds to finish in-flight work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Generator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

import uvicorn
from starlette.types import ASGIApp

from mangahub.app import Runtime
from mangahub.chat.protocol import MAX_MESSAGE_BYTES
from mangahub.http.app import create_app
from mangahub.http.protocol import LimitedHttpToolsProtocol

log = logging.getLogger(__name__)

Part = Literal["api", "tcp", "udp", "grpc", "sync"]
# Every part, in start order ("sync" schedules the enabled sources' jobs only).
PARTS: tuple[Part, ...] = get_args(Part)


class ManagedServer(Protocol):
    name: str

    async def start(self) -> None: ...
    async def stop(self, timeout: float) -> None: ...
    @property
    def address(self) -> tuple[str, int]: ...


class _UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process has one coordinator."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


class HttpServer:
    """The HTTP door (REST, health, metrics; WebSocket chat joins it) on uvicorn."""

    name = "http"

    def __init__(
        self,
        runtime: Runtime,
        host: str,
        port: int,
        *,
        app: ASGIApp | None = None,
        name: str = "http",
    ) -> None:
        # ``app``/``name``: the same server serves the internal trigger (udp part).
        self.name = name
        self.app = app if app is not None else create_app(runtime)
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            lifespan="off",
            log_level="warning",
            # uvicorn's own logging setup stays off: the process configured it, and the
            # access log (``http_access_log``) is the app's, with request ids.
            log_config=None,
            access_log=False,
            # The head limits (SPEC "Limits") on top of httptools.
            http=LimitedHttpToolsProtocol,
            ws="websockets-sansio",
            # A chat message is at most 64 KiB; a larger frame is refused while read.
            ws_max_size=MAX_MESSAGE_BYTES,
            # Compression costs ~36 KiB per connection and a compress per member per message.
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=None,
            proxy_headers=False,
        )
        self._server = _UvicornServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Bound here, not by uvicorn: a port in use is then an OSError saying so,
        # instead of uvicorn's log line and SystemExit.
        config = self._server.config
        sock = _bind_tcp(config.host, config.port)
        self._task = asyncio.create_task(
            self._server._serve(sockets=[sock]), name=f"{self.name}-server"
        )
        while not self._server.started:
            if self._task.done():
                await self._task  # surfaces the bind error
                raise RuntimeError("http server stopped during start-up")
            await asyncio.sleep(0.01)

    @property
    def address(self) -> tuple[str, int]:
        sock = self._server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return str(host), int(port)

    async def stop(self, timeout: float) -> None:
        if self._task is None:
            return
        # Chat clients get 1001 "going away" (after their queued messages) before
        # uvicorn's own shutdown would close them with 1012.
        from mangahub.http.routes.ws import close_chat

        await close_chat(self._server.config.app, timeout=timeout / 2)
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._server.force_exit = True
            await self._task


@dataclass
class RunningServers:
    """The servers started by :func:`run_servers`, with their bound addresses."""

    servers: list[ManagedServer] = field(default_factory=list)

    def address(self, name: str) -> tuple[str, int]:
        for server in self.servers:
            if server.name == name:
                return server.address
        raise KeyError(name)


def build_servers(runtime: Runtime, parts: Sequence[Part]) -> list[ManagedServer]:
    settings = runtime.settings
    servers: list[ManagedServer] = []
    for part in parts:
        if part == "api":
            servers.append(HttpServer(runtime, settings.host, settings.http_port))
        elif part == "tcp":
            from mangahub.tcp.server import TcpConfig, TcpServer

            config = TcpConfig(max_connections=settings.tcp_max_connections)
            servers.append(TcpServer(runtime, settings.host, settings.tcp_port, config))
        elif part == "udp":
            from mangahub.udp.server import UdpServer
            from mangahub.udp.trigger import trigger_server

            servers.append(UdpServer(runtime, settings.host, settings.udp_port))
            servers.append(trigger_server(runtime, settings.host, settings.trigger_port))
        elif part == "grpc":
            from mangahub.grpcapi.server import GrpcServer

            servers.append(GrpcServer(runtime, settings.host, settings.grpc_port))
        elif part == "sync":
            from mangahub.sync.scheduler import SyncScheduler

            servers.append(SyncScheduler(runtime))
        else:
            raise ValueError(f"part {part!r} is not available in this build")
    return servers


@asynccontextmanager
async def run_servers(
    runtime: Runtime,
    parts: Sequence[Part] = PARTS,
    *,
    drain_timeout: float = 10.0,
    warm: bool = False,
) -> AsyncIterator[RunningServers]:
    """``warm``: warm the catalog (:mod:`mangahub.warmup`) before any server starts,
    and once all have started, keep what start-up built out of the garbage collector's
    full passes (see :func:`mangahub.warmup.settle`)."""
    running = RunningServers()
    try:
        servers = build_servers(runtime, parts)
        if warm:
            from mangahub.warmup import warm_up

            http = next(
                (s for s in servers if isinstance(s, HttpServer) and s.name == "http"), None
            )
            await warm_up(runtime, parts, None if http is None else http.app)
        for server in servers:
            await server.start()
            running.servers.append(server)
        if warm:
            from mangahub.warmup import settle

            settle()
        yield running
    finally:
        for server in reversed(running.servers):
            try:
                await server.stop(drain_timeout)
            except Exception:  # one failing stop must not keep the others open
                log.exception("error while stopping %s", server.name)
