"""The token bucket every door limits message rates with."""

from __future__ import annotations

import random

import pytest

from mangahub.ratelimit import TokenBucket


class CountedTokens:
    """The bucket as SPEC words it, a count of tokens: the reference model."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.stamp = float(burst), now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False

    def retry_after(self) -> float:
        return max(0.0, (1.0 - self.tokens) / self.rate)


@pytest.mark.parametrize("seed", range(20))
def test_the_bucket_decides_as_a_count_of_tokens_would(seed: int) -> None:
    rng = random.Random(seed)
    rate = rng.choice([0.5, 5.0, 50.0, 100.0])
    burst = rng.choice([1, 2, 10, 100])
    now = [rng.uniform(0, 5)]
    bucket = TokenBucket(rate, burst, lambda: now[0])
    model = CountedTokens(rate, burst, now[0])
    for _ in range(500):
        # Bursts at one instant, steps of exactly one interval, and random gaps.
        now[0] += rng.choice([0.0, 0.0, 0.001, 1 / rate, 0.5 / rate, rng.uniform(0, 3 / rate)])
        allowed = bucket.take()
        assert allowed == model.take(now[0])
        if not allowed:
            assert bucket.retry_after() == pytest.approx(model.retry_after(), abs=1e-6)


def test_a_long_pause_saves_no_more_than_the_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(50.0, 3, lambda: now[0])
    now[0] += 3600
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.02)
