"""Confirmed publishes on the Redis bus: the publisher goes on only once every other
process listening to the topic has handled the event (what a cache invalidation
needs before its write is acknowledged), and a process that never answers costs a
bounded wait, not a hang. Each "process" here is a bus with its own connection and
its own event loop, on a thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from mangahub.bus import Event, RedisBus, Tap
from tests.conftest import REDIS_URL, redis_parts

# "It did not hang": far above a round trip, far below a test timeout.
BOUND = 10.0


@contextlib.asynccontextmanager
async def redis_bus(namespace: str, **options: float) -> AsyncIterator[RedisBus]:
    async with redis_parts(REDIS_URL, namespace, **options) as (_, bus):
        yield bus


@contextlib.contextmanager
def bus_on_a_thread(namespace: str, topic: str, listener: Tap) -> Iterator[None]:
    """Another process's bus, tapping ``topic`` with ``listener`` on its own loop."""
    ready = threading.Event()
    loop_of: list[asyncio.AbstractEventLoop] = []
    stop_of: list[asyncio.Event] = []

    async def serve() -> None:
        stop = asyncio.Event()
        async with redis_bus(namespace) as bus:
            await bus.tap(topic, listener)
            loop_of.append(asyncio.get_running_loop())
            stop_of.append(stop)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(BOUND), "the other bus did not start"
    try:
        yield
    finally:
        loop_of[0].call_soon_threadsafe(stop_of[0].set)
        thread.join(BOUND)


async def test_a_confirmed_publish_returns_once_the_other_process_has_handled_it() -> None:
    namespace = f"confirm-{uuid.uuid4().hex[:8]}"
    heard_there: list[Event | None] = []

    def slow_listener(event: Event | None) -> None:
        time.sleep(0.3)  # that process is busy: the publisher must wait for it
        heard_there.append(event)

    heard_here: list[Event | None] = []
    with bus_on_a_thread(namespace, "t", slow_listener):
        async with redis_bus(namespace) as bus:
            await bus.tap("t", heard_here.append)
            heard_there.clear()  # the other bus's connect says "may have missed" (None)
            await asyncio.wait_for(bus.publish_confirmed("t", {"n": 1}), BOUND)
            assert heard_there == [{"n": 1}]  # no confirmation request left in it
            assert {"n": 1} in heard_here


async def test_a_process_that_never_confirms_costs_the_timeout_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    namespace = f"confirm-{uuid.uuid4().hex[:8]}"
    silent = aioredis.Redis.from_url(REDIS_URL)
    pubsub = silent.pubsub()
    await pubsub.subscribe(f"{namespace}:bus:t")  # receives, never answers
    try:
        async with redis_bus(namespace, confirm_timeout=0.2) as bus:
            with caplog.at_level(logging.WARNING, logger="mangahub.bus"):
                await asyncio.wait_for(bus.publish_confirmed("t", {"n": 1}), BOUND)
        assert "1 of 1 processes did not confirm an event on t" in caplog.text
        async with asyncio.timeout(BOUND):
            async for message in pubsub.listen():
                if message["type"] == "message":
                    assert b'"n":1' in message["data"]
                    break
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await silent.aclose()


async def test_a_confirmed_publish_without_other_listeners_needs_no_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    namespace = f"confirm-{uuid.uuid4().hex[:8]}"
    heard: list[Event | None] = []
    async with redis_bus(namespace, confirm_timeout=BOUND) as bus:
        await bus.tap("t", heard.append)
        with caplog.at_level(logging.WARNING, logger="mangahub.bus"):
            # Its own echo confirms it; nothing else listens.
            await asyncio.wait_for(bus.publish_confirmed("t", {"n": 2}), BOUND / 2)
        assert {"n": 2} in heard
        assert "did not confirm" not in caplog.text
