"""Token-bucket rate limiting, shared by every door that limits message rates."""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one token per message.

    The clock is injected, so protocol code stays free of I/O and tests control time.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0 - 1e-9:  # tolerance: clock deltas are floats
            self._tokens = max(0.0, self._tokens - 1.0)
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next token (after a failed :meth:`take`)."""
        return max(0.0, (1.0 - self._tokens) / self.rate)
