"""One client's rate limiter, shared by concurrent workers: counted on the fake's
clock, every window holds at most ``burst + rate * window`` requests (retries too)."""

from __future__ import annotations

import asyncio

import pytest

from mangahub.sources.anilist import AniListClient
from mangahub.sources.limiter import AsyncRateLimiter
from mangahub.sources.mangadex import MangaDexClient
from tests.fakes.sources import FakeSources
from tests.sources.conftest import FAST_RETRY

# Fast enough to run in a few seconds, slow enough that the limiter, not the
# machine, sets the pace.
RATE, BURST, WORKERS, CALLS_EACH = 20.0, 5, 10, 6
# Arrival times at the fake differ from send times by scheduling jitter: one request.
JITTER = 1


def _worst_excess(times: list[float], rate: float, burst: int) -> float:
    """The largest ``count - (burst + rate * span)`` over every run of consecutive
    arrivals: positive means some window held more than the limiter allows."""
    times = sorted(times)
    worst = float("-inf")
    for i in range(len(times)):
        for j in range(i, len(times)):
            count = j - i + 1
            worst = max(worst, count - (burst + rate * (times[j] - times[i])))
    return worst


async def test_ten_workers_sharing_a_client_stay_within_the_rate(fake: FakeSources) -> None:
    async with MangaDexClient(
        fake.mangadex_url, rate_per_second=RATE, burst=BURST, retry=FAST_RETRY
    ) as client:

        async def worker(n: int) -> None:
            for i in range(CALLS_EACH):
                await client.list_manga(offset=(n * CALLS_EACH + i) % 100, limit=1)

        fake.fail_next("mangadex", 500, count=4)  # retries take tokens as well
        await asyncio.gather(*(worker(n) for n in range(WORKERS)))
    requests = fake.requests_to("mangadex")
    assert len(requests) == WORKERS * CALLS_EACH + 4
    assert _worst_excess([r.at for r in requests], RATE, BURST) <= JITTER
    # and the limit is the real constraint: the run took about as long as it must
    span = requests[-1].at - requests[0].at
    assert span >= (len(requests) - BURST) / RATE - 0.1


async def test_anilist_has_no_burst(fake: FakeSources) -> None:
    async with AniListClient(fake.anilist_url, requests_per_minute=600, retry=FAST_RETRY) as al:
        await asyncio.gather(*(al.search("fate", limit=1, offset=i) for i in range(8)))
    times = [r.at for r in fake.requests_to("anilist")]
    assert len(times) == 8
    assert _worst_excess(times, 10.0, 1) <= JITTER


async def test_a_retry_after_holds_back_every_worker(fake: FakeSources) -> None:
    async with MangaDexClient(fake.mangadex_url, retry=FAST_RETRY) as client:
        fake.fail_next("mangadex", 429, headers={"Retry-After": "1"})
        await client.search("a", limit=1)  # sees the 429, waits 1 s, succeeds
        throttled = fake.requests_to("mangadex")[0]
        fake.fail_next("mangadex", 429, headers={"Retry-After": "1"})
        first = asyncio.ensure_future(client.search("b", limit=1))
        await asyncio.sleep(0.2)  # the 429 has arrived; now the others start
        await asyncio.gather(first, *(client.search("c", limit=1) for _ in range(4)))
    assert throttled.status == 429
    after = fake.requests_to("mangadex")[2:]
    second_429 = after[0]
    assert second_429.status == 429
    assert all(r.at - second_429.at >= 0.95 for r in after[1:])
    assert len(after) == 6


def test_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        AsyncRateLimiter(0)
    with pytest.raises(ValueError):
        AsyncRateLimiter(1, burst=0)
