"""Event bus: how one connection learns about another's change.

Topics are plain strings (``progress:<user_id>``, ``chat:<room_id>`` ...); events are
JSON objects. In-process delivery by default; Redis pub/sub across processes.
Every subscription has a bounded queue: a subscriber that falls behind loses the
oldest events and is told so by ``dropped``, it never blocks the publisher. Events
that never arrived (Redis was away while other processes published) count the same
way: after an outage every subscription is marked, and its reader woken with a
:data:`MISSED` event, so clients resync from storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis

from mangahub.redislink import REDIS_DOWN_ERRORS, RedisLink

log = logging.getLogger(__name__)

Event = dict[str, Any]
# A synchronous listener (see EventBus.tap); None means "events may have been missed".
Tap = Callable[[Event | None], None]
# A subscription's synchronous receiver (see Subscription): (topic, event).
Listener = Callable[[str, Event], None]
DEFAULT_QUEUE_SIZE = 1024
# Reconnect backoff of the Redis reader, and how long one (re)subscribe may take.
_RECONNECT_MIN = 0.1
_RECONNECT_MAX = 2.0
# How long one (re)subscribe of every wanted topic may take, at least.
_CONNECT_TIMEOUT = 2.0
# Woken readers see this event (on one of their topics) after ``dropped`` grew.
MISSED: Event = {"type": "missed"}
# Put on a subscription's queue when it closes, to end iteration.
_CLOSED: tuple[str, Event] = ("", {})
# How long a confirmed publish waits for the other processes (see publish_confirmed).
DEFAULT_CONFIRM_TIMEOUT = 2.0
# The key of a confirmed publish's request in its message: [reply channel, number].
_CONFIRM = "_confirm"


class Subscription:
    """A bounded queue of events for one subscriber; iterate it to receive.

    With a ``listener`` there is no queue: each event is handed to it synchronously
    as it is dispatched (:data:`MISSED` after ``dropped`` grew), and the listener must
    not block (a connection that writes to its socket, say)."""

    def __init__(
        self, topics: frozenset[str], maxsize: int, on_close: Any, listener: Listener | None = None
    ) -> None:
        self.topics = topics
        self.dropped = 0
        self._listener = listener
        self._queue: asyncio.Queue[tuple[str, Event]] | None = (
            asyncio.Queue(maxsize) if listener is None else None
        )
        self._on_close = on_close
        self._closed = False

    def mark_missed(self) -> None:
        """Events for these topics may have been lost: count it and wake the reader."""
        if self._closed:
            return
        self.dropped += 1
        self.deliver(min(self.topics, default=""), MISSED)

    def deliver(self, topic: str, event: Event) -> None:
        if self._closed:
            return
        if self._listener is not None:
            self._listener(topic, event)
            return
        queue = self._require_queue()
        if queue.full():
            queue.get_nowait()
            self.dropped += 1
        queue.put_nowait((topic, event))

    def _require_queue(self) -> asyncio.Queue[tuple[str, Event]]:
        if self._queue is None:
            raise TypeError("a subscription with a listener has no queue to read")
        return self._queue

    async def get(self) -> tuple[str, Event]:
        """The next (topic, event); raises EOFError once the subscription is closed."""
        queue = self._require_queue()
        item = await queue.get()
        if item is _CLOSED:
            queue.put_nowait(_CLOSED)  # keep later readers from blocking too
            raise EOFError("subscription closed")
        return item

    def __aiter__(self) -> AsyncIterator[tuple[str, Event]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[str, Event]]:
        queue = self._require_queue()
        while True:
            item = await queue.get()
            if item is _CLOSED:
                queue.put_nowait(_CLOSED)  # later readers end too
                return
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._queue is not None:
            # Wake a reader blocked in get()/iteration so it can finish.
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(_CLOSED)
        await self._on_close(self)


class EventBus(Protocol):
    async def publish(self, topic: str, event: Event) -> None: ...
    async def publish_many(self, events: Sequence[tuple[str, Event]]) -> None:
        """Publish each (topic, event) in this order; one Redis round trip for all."""
        ...

    async def publish_confirmed(self, topic: str, event: Event) -> None:
        """Publish, and return once every process that listens to ``topic`` has run
        its taps and local fan-out for it (or a timeout passed, which is logged).
        For invalidations: after it, no process serves what the event dropped."""
        ...

    async def subscribe(
        self, *topics: str, maxsize: int = DEFAULT_QUEUE_SIZE, listener: Listener | None = None
    ) -> Subscription: ...
    async def tap(self, topic: str, listener: Tap) -> None:
        """Call ``listener`` synchronously with every event on ``topic`` (no queue, no
        task hop: it runs inside ``publish`` locally and inside the Redis reader), and
        with None whenever events may have been missed (Redis lost or reconnected).
        For listeners that only drop local state, such as caches."""
        ...

    @property
    def connected(self) -> bool:
        """Whether events from other processes reach this one now."""
        ...

    async def start(self) -> None: ...
    async def close(self) -> None: ...


class _LocalFanout:
    """Topic → subscriptions registry shared by both implementations."""

    def __init__(self) -> None:
        self.subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)
        self.taps: defaultdict[str, list[Tap]] = defaultdict(list)

    def add_tap(self, topic: str, listener: Tap) -> bool:
        """Register; True when the topic had no local listener before."""
        fresh = topic not in self.subscribers and topic not in self.taps
        self.taps[topic].append(listener)
        return fresh

    def topics(self) -> set[str]:
        return set(self.subscribers) | set(self.taps)

    def gap(self) -> None:
        for listeners in self.taps.values():
            for listener in listeners:
                listener(None)

    def add(self, sub: Subscription) -> list[str]:
        """Register; returns the topics that had no local subscriber before."""
        fresh = [t for t in sub.topics if not self.subscribers[t]]
        for topic in sub.topics:
            self.subscribers[topic].add(sub)
        return fresh

    def remove(self, sub: Subscription) -> list[str]:
        """Unregister; returns the topics that now have no local subscriber."""
        emptied = []
        for topic in sub.topics:
            subs = self.subscribers.get(topic)
            if subs is None:
                continue
            subs.discard(sub)
            if not subs:
                del self.subscribers[topic]
                if topic not in self.taps:
                    emptied.append(topic)
        return emptied

    def dispatch(self, topic: str, event: Event) -> None:
        for listener in self.taps.get(topic, ()):
            listener(event)
        for sub in list(self.subscribers.get(topic, ())):
            sub.deliver(topic, event)


class MemoryBus:
    """Delivers within this process only."""

    def __init__(self) -> None:
        self._fanout = _LocalFanout()

    async def publish(self, topic: str, event: Event) -> None:
        self._fanout.dispatch(topic, event)

    async def publish_many(self, events: Sequence[tuple[str, Event]]) -> None:
        for topic, event in events:
            self._fanout.dispatch(topic, event)

    async def publish_confirmed(self, topic: str, event: Event) -> None:
        self._fanout.dispatch(topic, event)  # this process is every listener there is

    async def subscribe(
        self, *topics: str, maxsize: int = DEFAULT_QUEUE_SIZE, listener: Listener | None = None
    ) -> Subscription:
        sub = Subscription(frozenset(topics), maxsize, self._unsubscribe, listener)
        self._fanout.add(sub)
        return sub

    async def _unsubscribe(self, sub: Subscription) -> None:
        self._fanout.remove(sub)

    async def tap(self, topic: str, listener: Tap) -> None:
        self._fanout.add_tap(topic, listener)

    @property
    def connected(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class _Confirmations:
    """How many processes have handled one confirmed publish, and how many must."""

    __slots__ = ("done", "expected", "received")

    def __init__(self) -> None:
        self.received = 0
        self.expected: int | None = None  # known once Redis answers the PUBLISH
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self) -> None:
        self.received += 1
        self._check()

    def expect(self, receivers: int) -> None:
        self.expected = receivers
        self._check()

    def release(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _check(self) -> None:
        if self.expected is not None and self.received >= self.expected:
            self.release()


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Done callback of a send nobody awaits (a confirmation: if it is lost, its
    publisher's wait times out and says so)."""
    if not future.cancelled():
        future.exception()


class RedisBus:
    """Redis pub/sub: one connection per process listens for the topics its
    subscribers want, and fans each message out locally.

    Without Redis the bus degrades to :class:`MemoryBus` behaviour: a publish reaches
    this process's subscribers directly (other processes' clients catch up from
    storage: TCP ``sync``, chat history, the UDP backlog). The reader reconnects with
    backoff, subscribes every topic wanted at that moment, and Redis delivery resumes.

    A confirmed publish carries its sender's reply channel; each receiver handles the
    event, then publishes the publish's number there. PUBLISH's answer says how many
    receivers there are, so the sender knows when all of them have answered.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str,
        link: RedisLink | None = None,
        *,
        confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT,
    ) -> None:
        self._redis = client
        self._prefix = f"{namespace}:bus:"
        self._fanout = _LocalFanout()
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.link = link if link is not None else RedisLink()
        # True while the pub/sub connection is subscribed to every wanted topic.
        self._connected = False
        # Set when the connection is lost: events published meanwhile never arrive.
        self._gap = False
        self._connect_timeout = max(_CONNECT_TIMEOUT, 4 * self.link.timeout)
        # Publishes waiting for the next pipeline (see _send).
        self._outbox: list[tuple[str, bytes, asyncio.Future[list[int]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # Where receivers confirm this process's confirmed publishes (publish_confirmed).
        # Always subscribed: it also keeps the pub/sub connection on some channel.
        self._replies = f"{self._prefix}_reply:"  # every process's reply channel
        self._reply_channel = self._replies + uuid.uuid4().hex
        self._confirm_timeout = confirm_timeout
        self._confirm_numbers = itertools.count(1)
        self._awaiting: dict[int, _Confirmations] = {}

    @property
    def connected(self) -> bool:
        return self._connected

    async def publish(self, topic: str, event: Event) -> None:
        await self.publish_many([(topic, event)])

    async def publish_many(self, events: Sequence[tuple[str, Event]]) -> None:
        await self._publish(events, [(self._prefix + t, orjson.dumps(e)) for t, e in events])

    async def _publish(
        self, events: Sequence[tuple[str, Event]], messages: list[tuple[str, bytes]]
    ) -> list[int] | None:
        """``events``, sent as ``messages`` (their channels and encodings); how many
        processes each reached, or None when Redis is away and only this process's
        subscribers got them."""
        # Local taps at once: this process's next read must already see the change
        # (the Redis echo calls them again; tap listeners are idempotent).
        for topic, event in events:
            for listener in self._fanout.taps.get(topic, ()):
                listener(event)
        # Before start() (start-up work) Redis is tried too: other processes may listen.
        if self._connected or self._reader is None:
            try:
                return await self._send(messages)
            except REDIS_DOWN_ERRORS as exc:
                self._lost("publish", exc)
        for topic, event in events:
            self._fanout.dispatch(topic, event)
        return None

    async def publish_confirmed(self, topic: str, event: Event) -> None:
        if not self._connected:  # no reader to hear confirmations: nothing to wait for
            await self.publish_many([(topic, event)])
            return
        number = next(self._confirm_numbers)
        confirmations = self._awaiting[number] = _Confirmations()
        try:
            request = orjson.dumps({**event, _CONFIRM: [self._reply_channel, number]})
            reached = await self._publish([(topic, event)], [(self._prefix + topic, request)])
            if reached is None:
                return  # Redis is away: nobody else can hear it, nor answer
            [receivers] = reached
            confirmations.expect(receivers)
            try:
                async with asyncio.timeout(self._confirm_timeout):
                    await confirmations.done
            except TimeoutError:
                log.warning(
                    "redis bus: %d of %d processes did not confirm an event on %s within %.1fs",
                    receivers - confirmations.received,
                    receivers,
                    topic,
                    self._confirm_timeout,
                )
        finally:
            del self._awaiting[number]

    def _confirm(self, request: object) -> None:
        """Tell a confirmed publish's sender that this process has handled it."""
        match request:
            case [str(channel), int(number)] if channel.startswith(self._replies):
                if channel == self._reply_channel:  # our own echo: no round trip
                    self._confirmed(number)
                else:
                    self._enqueue([(channel, b"%d" % number)]).add_done_callback(_retrieve)
            case _:
                log.warning("redis bus: dropped a malformed confirmation request")

    def _confirmed(self, number: int) -> None:
        confirmations = self._awaiting.get(number)
        if confirmations is not None:
            confirmations.add()

    async def _send(self, messages: list[tuple[str, bytes]]) -> list[int]:
        """PUBLISH each (channel, data), pipelined: one pipeline is in flight at a time,
        and every publish made meanwhile goes out in the next one, so N concurrent
        publishers (a group commit's pushes, a fan-out) cost about one round trip, not
        N. Publishes reach Redis in the order they were made; each caller gets its own
        outcome: how many receivers each of its messages reached."""
        return await self._enqueue(messages)

    def _enqueue(self, messages: list[tuple[str, bytes]]) -> asyncio.Future[list[int]]:
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._outbox.extend((channel, data, future) for channel, data in messages)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_all(), name="redis-bus-publish")
        return future

    async def _flush_all(self) -> None:
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                await self._flush(batch)
        finally:
            self._flusher = None

    async def _flush(self, batch: list[tuple[str, bytes, asyncio.Future[list[int]]]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for channel, data, _ in batch:
                    pipe.publish(channel, data)
                receivers = await pipe.execute()
        except Exception as exc:
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for *_, future in [*batch, *self._outbox]:  # shutdown: nobody waits forever
                future.cancel()
            self._outbox = []
            raise
        counts: dict[asyncio.Future[list[int]], list[int]] = {}
        for (*_, future), count in zip(batch, receivers, strict=True):
            counts.setdefault(future, []).append(count)
        for future, its_counts in counts.items():
            if not future.done():
                future.set_result(its_counts)

    async def subscribe(
        self, *topics: str, maxsize: int = DEFAULT_QUEUE_SIZE, listener: Listener | None = None
    ) -> Subscription:
        sub = Subscription(frozenset(topics), maxsize, self._unsubscribe, listener)
        async with self._lock:
            fresh = self._fanout.add(sub)
            if fresh and self._connected:
                try:
                    await self._pubsub.subscribe(*(self._prefix + t for t in fresh))
                except REDIS_DOWN_ERRORS as exc:
                    # Registered locally; the reconnect subscribes every wanted topic.
                    self._lost("subscribe", exc)
        return sub

    async def tap(self, topic: str, listener: Tap) -> None:
        async with self._lock:
            fresh = self._fanout.add_tap(topic, listener)
            if fresh and self._connected:
                try:
                    await self._pubsub.subscribe(self._prefix + topic)
                except REDIS_DOWN_ERRORS as exc:
                    self._lost("subscribe", exc)

    async def _unsubscribe(self, sub: Subscription) -> None:
        async with self._lock:
            emptied = self._fanout.remove(sub)
            if emptied and self._connected:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(*(self._prefix + t for t in emptied))

    def _lost(self, what: str, exc: BaseException) -> None:
        self._connected = False
        self._gap = True
        for confirmations in self._awaiting.values():  # they can no longer arrive
            confirmations.release()
        self._fanout.gap()
        self.link.failed(f"bus {what}", exc)

    async def start(self) -> None:
        # A pub/sub connection with no channel returns at once from get_message; the
        # reply channel, always subscribed, keeps the reader loop simple.
        if not await self._connect():
            log.warning("redis bus: starting without Redis; reconnecting in the background")
        self._reader = asyncio.create_task(self._read_loop(), name="redis-bus-reader")

    async def _connect(self) -> bool:
        """A fresh pub/sub connection subscribed to every topic wanted now.

        The network work happens outside the lock, so subscribers arriving while a
        hung Redis times out are not held up; topics they add meanwhile are subscribed
        under the lock once Redis has answered.
        """
        pubsub = self._redis.pubsub()
        try:
            async with asyncio.timeout(self._connect_timeout):
                wanted = self._fanout.topics()  # subscriptions and taps
                await pubsub.subscribe(self._reply_channel, *(self._prefix + t for t in wanted))
                # SUBSCRIBE only sends (a pooled socket to a dead server takes it); the
                # first confirmation proves that Redis answers on this connection.
                while True:
                    reply = await pubsub.get_message(timeout=self._connect_timeout)
                    if reply is None:
                        raise TimeoutError("no SUBSCRIBE confirmation")
                    if reply.get("type") == "subscribe":
                        break
                pubsub.ignore_subscribe_messages = True
                async with self._lock:
                    fresh = [t for t in self._fanout.topics() if t not in wanted]
                    if fresh:
                        await pubsub.subscribe(*(self._prefix + t for t in fresh))
                    old, self._pubsub = self._pubsub, pubsub
                    self._connected = True
        except REDIS_DOWN_ERRORS as exc:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            self._lost("connect", exc)
            return False
        with contextlib.suppress(Exception):
            await old.aclose()  # type: ignore[no-untyped-call]
        self.link.succeeded()
        # Whatever was published while we were away is unknown here: caches drop it.
        self._fanout.gap()
        if self._gap:
            self._gap = False
            self._mark_missed()
        return True

    def _mark_missed(self) -> None:
        subs = {sub for group in self._fanout.subscribers.values() for sub in group}
        for sub in subs:
            sub.mark_missed()
        if subs:
            log.warning("redis bus: %d subscriptions told they may have missed events", len(subs))

    async def _read_loop(self) -> None:
        delay = _RECONNECT_MIN
        while True:
            if not self._connected:
                await asyncio.sleep(delay)
                if await self._connect():
                    delay = _RECONNECT_MIN
                else:
                    delay = min(delay * 2, _RECONNECT_MAX)
                continue
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost (or the reply was garbage)
                self._lost("read", exc)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode()
            if channel == self._reply_channel:
                with contextlib.suppress(ValueError):
                    self._confirmed(int(message["data"]))
                continue
            try:
                event = orjson.loads(message["data"])
            except orjson.JSONDecodeError:
                log.warning("redis bus: dropped undecodable message on %s", channel)
                continue
            request = event.pop(_CONFIRM, None) if isinstance(event, dict) else None
            self._fanout.dispatch(channel.removeprefix(self._prefix), event)
            if request is not None:  # after the taps ran: the sender may go on now
                self._confirm(request)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
