"""The one way source clients talk HTTP: pooled connections, a shared rate limiter
awaited before every attempt, and retries with capped exponential backoff.

Retried: 429 (after the source's ``Retry-After`` / ``X-RateLimit-Retry-After`` when
it gives one), 5xx, and transport errors including timeouts. Never retried: any
other 4xx, which raises :class:`SourceRejected` at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx
import orjson

from mangahub import __version__
from mangahub.sources.limiter import AsyncRateLimiter
from mangahub.sources.models import SourceParseError, SourceRejected, SourceUnavailable

log = logging.getLogger(__name__)

# MangaDex asks every client to identify itself; a missing User-Agent may be blocked.
USER_AGENT = f"MangaHub/{__version__} (self-hosted manga tracker)"
_RETRY_AFTER_HEADERS = ("Retry-After", "X-RateLimit-Retry-After")
_UNIX_TIME_FLOOR = 1e9  # 2001-09-09: numbers from here on are Unix times, not seconds
# The largest answer read (decoded). A MangaDex page of 100 series with includes is
# well under 1 MiB; anything near this is not an answer worth holding in memory.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024

Params = Sequence[tuple[str, str | int]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``max_attempts`` tries; before try n+1 a random wait in
    ``[0, min(max_delay, base_delay * 2**(n-1))]`` ("full jitter"), or the wait the
    source asked for (capped at ``max_delay``). Tests shrink ``base_delay``."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 32.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (failures - 1))
        return random.uniform(0.0, ceiling)

    def honour(self, requested: float) -> float:
        return min(self.max_delay, max(0.0, requested))


def retry_after_seconds(headers: httpx.Headers, now: float | None = None) -> float | None:
    """The wait a response asks for: seconds, an HTTP-date, or a Unix time (MangaDex
    sends ``X-RateLimit-Retry-After: 1698723860``); None if absent."""
    current = now if now is not None else time.time()
    for name in _RETRY_AFTER_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        value = value.strip()
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            # No source asks for a 30-year wait: a number that large is a point in time.
            return max(0.0, number - current if number >= _UNIX_TIME_FLOOR else number)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - current)
    return None


class SourceHealth:
    """Whether the source could be reached at all: a refused connection, a failed name
    lookup or a connect timeout marks it unreachable until it answers again. Federated
    search reads this to stop waiting on a source that is not there."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.unreachable_at: float | None = None
        self._changed = asyncio.Event()

    def unreachable(self) -> None:
        self.unreachable_at = self._clock()
        self._changed.set()  # wakes current waiters; later ones wait for the next failure
        self._changed = asyncio.Event()

    def reached(self) -> None:
        self.unreachable_at = None

    def unreachable_within(self, seconds: float) -> bool:
        at = self.unreachable_at
        return at is not None and self._clock() - at < seconds

    async def wait_unreachable(self) -> None:
        """Return at the next connection failure."""
        await self._changed.wait()


class SourceHttp:
    """One source's HTTP session: shared by every coroutine using the client."""

    def __init__(
        self,
        source: str,
        base_url: str,
        *,
        limiter: AsyncRateLimiter,
        timeout: float,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.source = source
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.health = SourceHealth()
        self._timeout = timeout
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=10, max_keepalive_connections=10),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(
        self, path: str, params: Params | None = None, *, share: AsyncRateLimiter | None = None
    ) -> Any:
        return await self.request("GET", path, params=params, share=share)

    async def post(self, path: str, body: Any) -> Any:
        return await self.request("POST", path, json=body)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        share: AsyncRateLimiter | None = None,
    ) -> Any:
        """The decoded JSON body of a 2xx answer, after retries; SourceError otherwise.
        ``share``: a second limiter this kind of request must also pass, capping its
        part of the shared rate."""
        problem = "no attempt made"
        for attempt in range(1, self.retry.max_attempts + 1):
            if share is not None:
                await share.acquire()
            await self.limiter.acquire()
            wait: float | None = None
            try:
                response, content = await self._fetch(method, path, params, json)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
                if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                    self.health.unreachable()
            except TimeoutError:
                problem = f"TimeoutError: no complete answer within {self._timeout:g}s"
            else:
                self.health.reached()
                status = response.status_code
                if 200 <= status < 300:
                    return self._decode(content)
                if status != 429 and status < 500:
                    raise SourceRejected(self.source, status, _error_text(response, content))
                problem = f"HTTP {status}"
                requested = retry_after_seconds(response.headers)
                if requested is not None:
                    wait = self.retry.honour(requested)
                    self.limiter.pause(wait)
            if attempt == self.retry.max_attempts:
                break
            delay = wait if wait is not None else self.retry.backoff(attempt)
            # Debug only: the caller reports the final failure once (an offline server's
            # scheduler would otherwise log every attempt of every request).
            log.debug(
                "%s: %s %s failed (%s), retry %d in %.2fs",
                self.source,
                method,
                path,
                problem,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)
        raise SourceUnavailable(
            self.source, f"{problem} after {self.retry.max_attempts} attempt(s)"
        )

    async def _fetch(
        self, method: str, path: str, params: Params | None, json: Any
    ) -> tuple[httpx.Response, bytes]:
        """One attempt: the response and its body, read within the timeout as a whole
        (httpx's own timeout is per read, so a trickling source would never hit it)
        and up to :data:`MAX_RESPONSE_BYTES`."""
        async with asyncio.timeout(self._timeout):
            request = self._client.build_request(
                method, path, params=None if params is None else list(params), json=json
            )
            response = await self._client.send(request, stream=True)
            try:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise SourceParseError(
                            self.source, f"response larger than {MAX_RESPONSE_BYTES} bytes"
                        )
                    chunks.append(chunk)
            finally:
                await response.aclose()
        return response, b"".join(chunks)

    def _decode(self, content: bytes) -> Any:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise SourceParseError(self.source, f"response is not JSON: {exc}") from exc


def _error_text(response: httpx.Response, content: bytes) -> str:
    """A short reason from a source's error body (MangaDex ``errors[].detail``,
    GraphQL ``errors[].message``), else the status phrase."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        parts = [
            str(e.get("detail") or e.get("title") or e.get("message") or "")
            for e in body["errors"]
            if isinstance(e, dict)
        ]
        text = "; ".join(p for p in parts if p)
        if text:
            return text[:500]
    return response.reason_phrase or "rejected"


def utc_naive_iso(moment: datetime) -> str:
    """MangaDex's date parameter format: ``2024-01-15T02:49:24``, in UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat()


class SourceClient:
    """What every source client shares: one :class:`SourceHttp` pool, closed on exit."""

    name: str
    _http: SourceHttp

    @property
    def health(self) -> SourceHealth:
        return self._http.health

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
