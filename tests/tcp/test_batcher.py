"""How the progress batcher orders, pipelines and fails shared transactions (unit tests
of ProgressBatcher: the writers are plain functions that count)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from mangahub.domain.enums import ReadingStatus
from mangahub.domain.errors import MangaHubError, Unavailable
from mangahub.domain.schemas import EntryPublic
from mangahub.services.entry_writes import EntryWrite, progress_write
from mangahub.tcp.batcher import ProgressBatcher

USER = uuid.uuid4()


def write(manga_id: int) -> EntryWrite:
    return progress_write(USER, manga_id, 1.0, status=ReadingStatus.READING, device="test")


def stored(w: EntryWrite) -> EntryPublic:
    # Only identity matters here: the batcher hands the stored entry back untouched.
    return EntryPublic.model_construct(
        manga_id=w.manga_id,
        chapter=w.changes["chapter"],
        status=w.changes["status"],
        version=1,
        updated_at=datetime.now(UTC),
        device=w.device,
    )


class Answers:
    """A committed batch whose outcomes are ready; records the slices asked for."""

    def __init__(self, outcomes: list[EntryPublic | MangaHubError]) -> None:
        self.outcomes = outcomes
        self.slices: list[tuple[int, int]] = []
        self.hold: asyncio.Event | None = None  # set: the first slice waits for it
        self.broken: int | None = None  # the slice starting here raises ``failure``
        self.failure: Exception = RuntimeError("announce bug")

    async def announce(self, start: int, stop: int) -> list[EntryPublic | MangaHubError]:
        self.slices.append((start, stop))
        if self.hold is not None and start == 0:
            await self.hold.wait()
        if start == self.broken:
            raise self.failure
        return self.outcomes[start:stop]


class Store:
    """Counts calls; ``many_error`` is what a shared transaction raises."""

    def __init__(self, many_error: Exception, bad: int | None = None) -> None:
        self.many_error = many_error
        self.bad = bad
        self.one_calls = 0
        self.many_calls = 0

    async def write_one(self, w: EntryWrite) -> EntryPublic:
        self.one_calls += 1
        if w.manga_id == self.bad:
            raise IntegrityError("INSERT", {}, Exception("foreign key"))
        return stored(w)

    async def commit_many(self, writes: Sequence[EntryWrite]) -> Answers:
        self.many_calls += 1
        raise self.many_error


async def offer_all(store: Store, count: int) -> list[EntryPublic | MangaHubError]:
    batcher = ProgressBatcher(store.write_one, store.commit_many, max_batch=count)
    await batcher.start()
    outcomes: dict[int, EntryPublic | MangaHubError] = {}
    # Offering never yields: the writer task, once it runs, finds every write queued
    # and makes them one batch.
    for i in range(count):
        assert batcher.offer(write(i), outcomes.__setitem__, i)
    await batcher.stop()
    assert sorted(outcomes) == list(range(count))  # every write got exactly its reply
    return [outcomes[i] for i in range(count)]


async def test_an_unavailable_database_fails_the_whole_batch_at_once() -> None:
    store = Store(Unavailable("database unavailable; retry later"))
    outcomes = await offer_all(store, 50)
    assert store.many_calls == 1
    assert store.one_calls == 0  # no write waits for the connect timeout on its own
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes)


async def test_a_transport_error_fails_the_batch_as_unavailable() -> None:
    store = Store(ConnectionResetError("reset"))
    outcomes = await offer_all(store, 10)
    assert store.one_calls == 0
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes)


async def test_an_integrity_error_retries_one_by_one_and_isolates_the_bad_write() -> None:
    store = Store(IntegrityError("INSERT", {}, Exception("foreign key")), bad=3)
    outcomes = await offer_all(store, 10)
    assert store.many_calls == 1 and store.one_calls == 10
    assert [isinstance(o, EntryPublic) for o in outcomes] == [i != 3 for i in range(10)]


class Gate:
    """A store whose shared transaction waits until the test opens the gate."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.batches: list[list[int]] = []
        self.committed: list[Answers] = []

    async def write_one(self, w: EntryWrite) -> EntryPublic:
        raise AssertionError("not used")

    async def commit_many(self, writes: Sequence[EntryWrite]) -> Answers:
        self.batches.append([w.manga_id for w in writes])
        await self.open.wait()
        answers = Answers([stored(w) for w in writes])
        self.committed.append(answers)
        return answers


async def test_a_full_queue_refuses_until_the_writer_takes_a_batch() -> None:
    gate = Gate()
    batcher = ProgressBatcher(gate.write_one, gate.commit_many, max_batch=4, max_queue=4)
    await batcher.start()
    replies: list[int] = []
    for i in range(4):
        assert batcher.offer(write(i), lambda i, outcome: replies.append(i), i)
    await asyncio.sleep(0)  # the writer takes 0-3 and waits at the gate
    assert gate.batches == [[0, 1, 2, 3]]
    for i in range(4, 8):
        assert batcher.offer(write(i), lambda i, outcome: replies.append(i), i)
    assert not batcher.offer(write(8), lambda _, outcome: replies.append(8))  # full
    room = asyncio.create_task(batcher.room())
    await asyncio.sleep(0.01)
    assert not room.done()
    gate.open.set()
    await asyncio.wait_for(room, 5)
    assert batcher.offer(write(8), lambda _, outcome: replies.append(8))
    await batcher.stop()
    assert gate.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert replies == list(range(9))  # in submission order


async def test_stopping_answers_what_it_could_not_commit_and_refuses_more() -> None:
    gate = Gate()
    batcher = ProgressBatcher(gate.write_one, gate.commit_many, max_batch=2)
    await batcher.start()
    outcomes: dict[int, EntryPublic | MangaHubError] = {}
    for i in range(4):
        assert batcher.offer(write(i), outcomes.__setitem__, i)
    await batcher.stop(timeout=0.05)  # the gate never opens
    assert sorted(outcomes) == [0, 1, 2, 3]
    assert all(isinstance(o, Unavailable) for o in outcomes.values())
    with pytest.raises(Unavailable):
        batcher.offer(write(9), lambda _, outcome: None)


async def test_a_reply_that_raises_does_not_cost_the_others_theirs() -> None:
    gate = Gate()
    gate.open.set()
    batcher = ProgressBatcher(gate.write_one, gate.commit_many)
    await batcher.start()
    got: list[int] = []

    def broken(_: object, outcome: EntryPublic | MangaHubError) -> None:
        raise RuntimeError("reply bug")

    assert batcher.offer(write(0), broken)
    assert batcher.offer(write(1), lambda _, outcome: got.append(1))
    await batcher.stop()
    assert got == [1]


async def test_the_next_transaction_commits_while_the_last_one_is_still_answered() -> None:
    gate = Gate()
    gate.open.set()
    batcher = ProgressBatcher(gate.write_one, gate.commit_many, max_batch=2)
    await batcher.start()
    replies: list[int] = []
    hold = asyncio.Event()
    for i in range(2):
        assert batcher.offer(write(i), lambda i, outcome: replies.append(i), i)
    await asyncio.sleep(0)  # the writer commits 0-1
    gate.committed[0].hold = hold  # and its replies wait
    for i in range(2, 4):
        assert batcher.offer(write(i), lambda i, outcome: replies.append(i), i)
    for _ in range(20):
        await asyncio.sleep(0)
    assert gate.batches == [[0, 1], [2, 3]]  # committed, not held back by the replies
    assert replies == []  # 2-3 are answered after 0-1
    hold.set()
    await batcher.stop()
    assert replies == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("failure", "answer"),
    [
        (RuntimeError("announce bug"), "InternalError"),
        # The database went away after the commit: a retryable error, as it says.
        (Unavailable("database unavailable; retry later"), "Unavailable"),
    ],
)
async def test_a_batch_is_answered_in_slices_and_a_failed_slice_costs_only_itself(
    failure: Exception, answer: str
) -> None:
    gate = Gate()
    gate.open.set()
    batcher = ProgressBatcher(gate.write_one, gate.commit_many, announce_slice=2)
    await batcher.start()
    outcomes: dict[int, EntryPublic | MangaHubError] = {}
    for i in range(5):
        assert batcher.offer(write(i), outcomes.__setitem__, i)
    await asyncio.sleep(0)  # the writer commits all five at once
    gate.committed[0].broken = 2
    gate.committed[0].failure = failure
    await batcher.stop()
    assert gate.committed[0].slices == [(0, 2), (2, 4), (4, 5)]
    assert [type(outcomes[i]).__name__ for i in range(5)] == [
        "EntryPublic",
        "EntryPublic",
        answer,
        answer,
        "EntryPublic",
    ]
