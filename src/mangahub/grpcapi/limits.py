"""How many MangaService calls run at once: in all, and per connection.

gRPC's own limits answer without the servicer seeing the call (an HTTP/2 stream
over ``max_concurrent_streams`` is reset, which clients report as UNAVAILABLE, and
``maximum_concurrent_rpcs`` answers before any metric is taken). These limits sit
below both, so a call over them is answered RESOURCE_EXHAUSTED and counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class CallLimiter:
    max_total: int
    max_per_connection: int
    _total: int = 0
    _by_peer: Counter[str] = field(default_factory=Counter)

    def admit(self, peer: str) -> bool:
        """Take a slot for a call from ``peer`` (gRPC's peer string names one
        connection), or False when either limit is reached."""
        if self._total >= self.max_total or self._by_peer[peer] >= self.max_per_connection:
            return False
        self._total += 1
        self._by_peer[peer] += 1
        return True

    def release(self, peer: str) -> None:
        self._total -= 1
        self._by_peer[peer] -= 1
        if self._by_peer[peer] <= 0:
            del self._by_peer[peer]


def peer_host(peer: str) -> str:
    """The client address of a gRPC peer string: ``ipv4:1.2.3.4:5678`` → ``1.2.3.4``,
    ``ipv6:[::1]:5678`` → ``::1``; anything else is returned whole."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0] or rest
        return host.strip("[]")
    return peer
