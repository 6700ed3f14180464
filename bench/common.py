"""Pieces every load benchmark shares: file limits, ports, ratios, client processes."""

from __future__ import annotations

import contextlib
import multiprocessing
import resource
import socket
from collections.abc import Callable
from typing import Any


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (thousands of sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ratio(app: float, base: float) -> str:
    """MangaHub's number over the baseline's, as printed in every table."""
    return f"{app / base:.2f}x" if base else "n/a"


class ClientProcess:
    """A load-generating client process and the pipe that drives it.

    The target is called as ``target(pipe, *args)`` in a spawned process; it answers
    each phase with ``(kind, value)`` and ``("done", None)`` when told to stop.
    """

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child, *args), daemon=True)
        self.process.start()

    def expect(self, kind: str, timeout: float = 120) -> Any:
        if not self.pipe.poll(timeout):
            raise RuntimeError(f"worker did not answer {kind!r} in {timeout} s")
        got, value = self.pipe.recv()
        if got != kind:
            raise RuntimeError(f"expected {kind!r} from worker, got {got!r}")
        return value

    def finish(self, command: Any = "stop", timeout: float = 20) -> None:
        with contextlib.suppress(RuntimeError, EOFError, OSError):
            self.pipe.send(command)
            self.expect("done", timeout)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
