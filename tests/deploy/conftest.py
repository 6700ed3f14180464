"""Helpers for the deployment tests."""

from __future__ import annotations

import time
from collections.abc import Sequence

from mangahub.servers import PARTS
from tests.live_server import LiveServer

# Listeners each part announces ("mangahub <name> listening on ...").
PART_LISTENERS = {"api": ["http"], "tcp": ["tcp"], "udp": ["udp", "trigger"], "grpc": ["grpc"]}


def wait_for_listeners(
    server: LiveServer, parts: Sequence[str] = PARTS, timeout: float = 10
) -> None:
    """``live_server`` returns at the first listener; the others follow at once."""
    wanted = {name for part in parts for name in PART_LISTENERS.get(part, [])}
    deadline = time.monotonic() + timeout
    while not wanted <= set(server.addresses):
        if time.monotonic() > deadline:
            raise RuntimeError(f"listeners missing: {wanted - set(server.addresses)}")
        time.sleep(0.02)
