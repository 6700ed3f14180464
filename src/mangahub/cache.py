"""Cache interface with an in-process TTL implementation and a Redis one.

Values are JSON-serializable; the cache is only ever a copy, never the sole store.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis


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
    """Shared cache for every process of a deployment."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._redis = client
        self._ns = f"{namespace}:cache:"

    async def get(self, key: str) -> Any | None:
        raw = await self._redis.get(self._ns + key)
        return None if raw is None else orjson.loads(raw)

    async def set(self, key: str, value: Any, ttl: float) -> None:
        await self._redis.set(self._ns + key, orjson.dumps(value), px=max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._ns + key)

    async def incr(self, key: str, ttl: float) -> tuple[int, float]:
        full = self._ns + key
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(full)
            pipe.pexpire(full, max(1, int(ttl * 1000)), nx=True)
            pipe.pttl(full)
            count, _, pttl = await pipe.execute()
        return int(count), max(0.0, pttl / 1000)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        return None  # the client is owned by the composition root
