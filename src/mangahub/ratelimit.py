"""Token-bucket rate limiting, shared by every door that limits message rates."""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one token per message.

    Kept as one moment rather than a token count (the generic cell rate algorithm):
    when the bucket is full again if nothing more is taken. A message moves that
    moment one interval (1 / ``rate``) later, and is allowed while it leaves at least
    one token, i.e. while the moment lies at most ``burst`` - 1 intervals ahead. One
    clock read and two comparisons per message, on doors that take tens of thousands
    per second.

    The clock is injected, so protocol code stays free of I/O and tests control time.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._interval = 1.0 / rate
        # Messages allowed while full_at - now <= (burst - 1) intervals, with a
        # tolerance: clock deltas are floats.
        self._slack = (self.burst - 1.0 + 1e-9) * self._interval
        self._full_at = clock()  # when the bucket holds ``burst`` tokens again

    def take(self) -> bool:
        now = self._clock()
        full_at = self._full_at
        if full_at < now:  # full: what was saved beyond the burst is not kept
            full_at = now
        if full_at - now > self._slack:
            return False
        self._full_at = full_at + self._interval
        return True

    def retry_after(self) -> float:
        """Seconds until the next token (after a failed :meth:`take`)."""
        return max(0.0, self._full_at - self._clock() - self._slack)
