"""Whether Redis is reachable, shared by the cache and the bus of one process.

Redis only ever holds copies (cache entries, events about committed writes), so losing
it must not fail requests. The link turns failures into one warning when Redis goes
away and one notice when it is back, and gates calls while it is away: one call per
``retry_interval`` probes, every other call skips Redis at once instead of paying
the connect timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from mangahub import metrics

log = logging.getLogger(__name__)

# What "Redis is not there" looks like (BusyLoadingError is a ConnectionError).
REDIS_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)


def client_retry() -> Retry:
    """One quick retry: enough to replace a pooled connection that a Redis restart
    broke, short enough that a dead Redis fails a call in milliseconds."""
    return Retry(ExponentialBackoff(cap=0.2, base=0.05), 1)


class RedisLink:
    """Up/down state with transition logging and a probe gate."""

    def __init__(self, retry_interval: float = 1.0) -> None:
        self.retry_interval = retry_interval
        self.up = True
        self.outages = 0
        self._retry_at = 0.0
        self._down_since = 0.0
        metrics.track("redis", self)

    def usable(self) -> bool:
        """May this call go to Redis? Always while up; while down, one call per interval."""
        if self.up:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        self._retry_at = now + self.retry_interval
        return True

    def failed(self, what: str, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.retry_interval
        if not self.up:
            return
        self.up = False
        self.outages += 1
        self._down_since = time.monotonic()
        log.warning(
            "redis unreachable (%s: %s: %s); serving from the database without the shared "
            "cache, events reach this process's clients only, until it is back",
            what,
            type(exc).__name__,
            exc,
        )

    def succeeded(self) -> None:
        if self.up:
            return
        self.up = True
        log.warning(
            "redis reachable again after %.1f s; shared cache and cross-process events resumed",
            time.monotonic() - self._down_since,
        )
