"""Whether Redis is reachable, shared by the cache and the bus of one process.

Redis only ever holds copies (cache entries, events about committed writes), so losing
it must not fail requests. The link turns failures into one warning when Redis goes
away and one notice when it is back, and works as a breaker: while Redis is away no
request waits on it; a background ping (one per ``retry_interval``, bounded by the
client timeout) decides when it is back. A Redis that hangs (stopped, not refused)
therefore costs one client timeout once, then nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.asyncio as aioredis
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

# Every Redis call MangaHub makes is a sub-millisecond key or pub/sub operation; a
# reply that takes longer than this means Redis is stuck, and waiting longer only
# makes requests pay for it.
DEFAULT_TIMEOUT = 0.5


def client_retry() -> Retry:
    """One quick retry of a broken connection: enough to replace a pooled connection
    that a Redis restart broke. A timeout is not retried: a hung Redis would make
    every call wait twice."""
    return Retry(
        ExponentialBackoff(cap=0.2, base=0.05),
        1,
        supported_errors=(redis.exceptions.ConnectionError,),
    )


def open_client(url: str, timeout: float = DEFAULT_TIMEOUT) -> aioredis.Redis:
    """The process's Redis client: short timeouts on connect and on every reply."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry=client_retry(),
    )


class RedisLink:
    """Up/down state with transition logging and a breaker.

    With a ``client``, a down link refuses every call and pings Redis in the
    background; without one (a bare link), one call per interval probes in line.
    """

    def __init__(
        self,
        client: aioredis.Redis | None = None,
        *,
        retry_interval: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.retry_interval = retry_interval
        self.timeout = timeout
        self.up = True
        self.outages = 0
        self.reason = ""
        self._client = client
        self._probe: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._down_since = 0.0
        metrics.track("redis", self)

    def usable(self) -> bool:
        """May this call go to Redis? Always while up; while down, never (with a
        client: the background ping reopens the link) or one call per interval."""
        if self.up:
            return True
        now = time.monotonic()
        if now < self._retry_at:
            return False
        if self._client is None:
            self._retry_at = now + self.retry_interval
            return True
        if self._probe is None:
            self._retry_at = now + self.retry_interval
            self._probe = asyncio.get_running_loop().create_task(
                self._ping(self._client), name="redis-probe"
            )
        return False

    async def _ping(self, client: aioredis.Redis) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await client.ping()
        except REDIS_DOWN_ERRORS:
            self._retry_at = time.monotonic() + self.retry_interval
        except Exception:  # a garbled reply is not a healthy Redis either
            log.debug("redis probe failed", exc_info=True)
        else:
            self.succeeded()
        finally:
            self._probe = None

    def failed(self, what: str, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self.retry_interval
        if not self.up:
            return
        self.up = False
        self.outages += 1
        self._down_since = time.monotonic()
        self.reason = f"{type(exc).__name__}"
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

    async def close(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
