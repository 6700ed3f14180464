"""The event bus and cache of the run's backend (in-process, or Redis), plus the
bounded-queue rule that holds for both."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from mangahub.app import Runtime
from mangahub.bus import MISSED, Event, MemoryBus
from mangahub.cache import MemoryCache


async def test_published_event_reaches_every_subscriber_of_the_topic(runtime: Runtime) -> None:
    topic = f"test:{uuid.uuid4()}"
    first = await runtime.bus.subscribe(topic)
    second = await runtime.bus.subscribe(topic)
    other = await runtime.bus.subscribe(f"test:{uuid.uuid4()}")
    try:
        await runtime.bus.publish(topic, {"n": 1, "text": "héllo"})
        for sub in (first, second):
            assert await asyncio.wait_for(sub.get(), 5) == (topic, {"n": 1, "text": "héllo"})
        await asyncio.sleep(0.1)
        assert other._queue.empty()
    finally:
        for sub in (first, second, other):
            await sub.close()


async def test_closing_ends_a_waiting_reader_and_stops_delivery(runtime: Runtime) -> None:
    topic = f"test:{uuid.uuid4()}"
    sub = await runtime.bus.subscribe(topic)
    received: list[object] = []

    async def read_all() -> None:
        async for item in sub:
            received.append(item)

    reader = asyncio.create_task(read_all())
    await asyncio.sleep(0.05)
    await sub.close()
    await asyncio.wait_for(reader, 2)  # iteration ended instead of hanging
    await runtime.bus.publish(topic, {"n": 1})
    await asyncio.sleep(0.1)
    assert received == []
    with pytest.raises(EOFError):
        await asyncio.wait_for(sub.get(), 1)


async def test_slow_subscriber_drops_oldest_and_never_blocks_publisher() -> None:
    bus = MemoryBus()
    sub = await bus.subscribe("t", maxsize=3)
    for n in range(10):
        await asyncio.wait_for(bus.publish("t", {"n": n}), 1)
    assert sub.dropped == 7
    assert [(await sub.get())[1]["n"] for _ in range(3)] == [7, 8, 9]


async def test_publish_many_keeps_its_order_for_queues_and_listeners(runtime: Runtime) -> None:
    a, b = f"test:{uuid.uuid4()}", f"test:{uuid.uuid4()}"
    heard: list[tuple[str, Event]] = []
    all_heard = asyncio.Event()

    def listen(topic: str, event: Event) -> None:
        heard.append((topic, event))
        if len(heard) == 3:
            all_heard.set()

    listener = await runtime.bus.subscribe(a, b, listener=listen)
    queued = await runtime.bus.subscribe(a)
    try:
        await runtime.bus.publish_many([(a, {"n": 1}), (b, {"n": 2}), (a, {"n": 3})])
        await asyncio.wait_for(all_heard.wait(), 5)
        assert heard == [(a, {"n": 1}), (b, {"n": 2}), (a, {"n": 3})]
        assert [await asyncio.wait_for(queued.get(), 5) for _ in range(2)] == [
            (a, {"n": 1}),
            (a, {"n": 3}),
        ]
    finally:
        await listener.close()
        await queued.close()


async def test_a_listener_hears_missed_events_and_nothing_after_close() -> None:
    bus = MemoryBus()
    heard: list[tuple[str, Event]] = []
    sub = await bus.subscribe("t", listener=lambda topic, event: heard.append((topic, event)))
    sub.mark_missed()
    assert (sub.dropped, heard) == (1, [("t", MISSED)])
    with pytest.raises(TypeError):
        await sub.get()  # no queue: events went to the listener
    await sub.close()
    await bus.publish("t", {"n": 1})
    assert heard == [("t", MISSED)]


async def test_cache_roundtrip_and_expiry(runtime: Runtime) -> None:
    key = f"test:{uuid.uuid4()}"
    await runtime.cache.set(key, {"a": [1, 2]}, ttl=0.3)
    assert await runtime.cache.get(key) == {"a": [1, 2]}
    await asyncio.sleep(0.5)
    assert await runtime.cache.get(key) is None
    await runtime.cache.set(key, 1, ttl=10)
    await runtime.cache.delete(key)
    assert await runtime.cache.get(key) is None


async def test_cache_counter_window(runtime: Runtime) -> None:
    key = f"test:{uuid.uuid4()}"
    counts = [(await runtime.cache.incr(key, ttl=30))[0] for _ in range(3)]
    assert counts == [1, 2, 3]
    _, left = await runtime.cache.incr(key, ttl=30)
    assert 0 < left <= 30


async def test_memory_cache_is_bounded() -> None:
    cache = MemoryCache(max_entries=3)
    for n in range(5):
        await cache.set(str(n), n, ttl=60)
    assert [await cache.get(str(n)) for n in range(5)] == [None, None, 2, 3, 4]
