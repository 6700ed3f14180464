"""Per-client-address budgets for expensive anonymous work (registration runs bcrypt,
an anonymous federated search spends the sources' request budget).

Counted in the cache, so every process of a deployment shares one count per address
(Redis) and the answer carries the Retry-After of the window, like the login guard.
"""

from __future__ import annotations

import hashlib
import math

from mangahub.cache import Cache
from mangahub.domain.errors import RateLimited


class AddressThrottle:
    """At most ``limit`` calls per ``window`` seconds from one client address."""

    def __init__(self, cache: Cache, name: str, limit: int, window: float, what: str) -> None:
        self._cache = cache
        self._name = name
        self.limit = limit
        self.window = window
        self._what = what

    async def admit(self, address: str) -> None:
        """Count one call from ``address``; RateLimited once over the limit."""
        count, seconds_left = await self._cache.incr(self._key(address), self.window)
        if count > self.limit:
            raise RateLimited(
                f"too many {self._what} from this address, try again later",
                retry_after=max(1, math.ceil(seconds_left)),
            )

    def _key(self, address: str) -> str:
        # Fixed size whatever the peer string; the name keeps budgets apart.
        return f"throttle:{self._name}:{hashlib.sha256(address.encode()).hexdigest()[:32]}"
