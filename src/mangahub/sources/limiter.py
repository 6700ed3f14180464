"""An awaitable token bucket shared by every coroutine that uses one source client.

Waiters are served strictly in arrival order (``asyncio.Lock`` queues them FIFO), so
ten workers sharing a client take turns and together never exceed the rate. A
source's ``Retry-After`` pauses the whole limiter, not just the coroutine that saw it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from mangahub.ratelimit import TokenBucket


class AsyncRateLimiter:
    """``rate`` requests per second with up to ``burst`` saved up."""

    def __init__(
        self, rate: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self._clock = clock
        self._bucket = TokenBucket(rate, burst, clock)
        self._lock = asyncio.Lock()
        self._paused_until = 0.0

    @property
    def rate(self) -> float:
        return self._bucket.rate

    async def acquire(self) -> None:
        """Wait for this caller's turn and one token. Cancellation gives up the turn."""
        async with self._lock:
            while True:
                pause = self._paused_until - self._clock()
                if pause > 0:
                    await asyncio.sleep(pause)
                    continue
                if self._bucket.take():
                    return
                await asyncio.sleep(self._bucket.retry_after())

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (the source asked us to slow down)."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))
