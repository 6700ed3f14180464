"""Cache interface with an in-process TTL implementation and a Redis one.

Values are JSON-serializable; the cache is only ever a copy, never the sole store.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson
import redis.asyncio as aioredis
import redis.exceptions

from mangahub.redislink import REDIS_DOWN_ERRORS, RedisLink

T = TypeVar("T")


class Cache(Protocol):
    async def get(self, key: str) -> Any | None: ...
    async def set(self, key: str, value: Any, ttl: float) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def incr(self, key: str, ttl: float) -> tuple[int, float]:
        """Count one event in a fixed window; returns (count, seconds left in the window)."""
        ...

    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class MemoryCache:
    """Bounded LRU with per-key expiry, for a single process."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._max = max_entries

    def _live(self, key: str) -> tuple[float, Any] | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return item

    def _put(self, key: str, expires: float, value: Any) -> None:
        self._data[key] = (expires, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    async def get(self, key: str) -> Any | None:
        item = self._live(key)
        return None if item is None else item[1]

    async def set(self, key: str, value: Any, ttl: float) -> None:
        self._put(key, time.monotonic() + ttl, value)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, ttl: float) -> tuple[int, float]:
        now = time.monotonic()
        item = self._live(key)
        if item is None:
            self._put(key, now + ttl, 1)
            return 1, ttl
        count = int(item[1]) + 1
        self._put(key, item[0], count)
        return count, item[0] - now

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """Shared cache for every process of a deployment.

    While Redis is unreachable (see :class:`~mangahub.redislink.RedisLink`) reads are
    misses and writes are skipped: the database answers, only slower. Fixed-window
    counters (login guard) fall back to this process's own counts, so the guard holds
    per process instead of disappearing. A delete skipped during an outage leaves the
    old entry until its TTL ends, which bounds how stale a copy can be.
    """

    def __init__(
        self, client: aioredis.Redis, namespace: str, link: RedisLink | None = None
    ) -> None:
        self._redis = client
        self._ns = f"{namespace}:cache:"
        self.link = link if link is not None else RedisLink()
        self._local_counts = MemoryCache(max_entries=10_000)

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T | _Skipped:
        if not self.link.usable():
            return _SKIPPED
        try:
            result = await call()
        except REDIS_DOWN_ERRORS as exc:
            self.link.failed(f"cache {what}", exc)
            return _SKIPPED
        self.link.succeeded()
        return result

    async def get(self, key: str) -> Any | None:
        raw = await self._call("get", lambda: self._redis.get(self._ns + key))
        if raw is None or isinstance(raw, _Skipped):
            return None
        return orjson.loads(raw)

    async def set(self, key: str, value: Any, ttl: float) -> None:
        data = orjson.dumps(value)
        await self._call(
            "set", lambda: self._redis.set(self._ns + key, data, px=max(1, int(ttl * 1000)))
        )

    async def delete(self, key: str) -> None:
        await self._call("delete", lambda: self._redis.delete(self._ns + key))

    async def incr(self, key: str, ttl: float) -> tuple[int, float]:
        full = self._ns + key

        async def shared() -> tuple[int, float]:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(full)
                pipe.pexpire(full, max(1, int(ttl * 1000)), nx=True)
                pipe.pttl(full)
                count, _, pttl = await pipe.execute()
            return int(count), max(0.0, pttl / 1000)

        result = await self._call("incr", shared)
        if isinstance(result, _Skipped):
            return await self._local_counts.incr(key, ttl)
        return result

    async def ping(self) -> None:
        """Asks Redis itself (readiness must see the truth); a success reopens the gate.
        While the link is down its background probe is the truth: a hung Redis must
        not make every readiness check wait for the timeout."""
        if not self.link.usable():
            raise redis.exceptions.ConnectionError(f"redis unreachable ({self.link.reason})")
        try:
            async with asyncio.timeout(self.link.timeout):
                await self._redis.ping()
        except REDIS_DOWN_ERRORS as exc:
            self.link.failed("ping", exc)
            raise
        self.link.succeeded()

    async def close(self) -> None:
        return None  # the client is owned by the composition root


class _Skipped:
    """Marker: the call did not reach Redis."""


_SKIPPED = _Skipped()
