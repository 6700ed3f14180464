"""The database handle: losing the database is a typed, retryable error, and the
pool never hands out a connection the server closed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, select, text

from mangahub.app import Runtime
from mangahub.domain.errors import Unavailable
from mangahub.storage import database
from mangahub.storage.database import Database
from mangahub.storage.models import Manga
from tests.live_server import free_port


async def test_unreachable_database_is_unavailable() -> None:
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere")
    try:
        with pytest.raises(Unavailable) as caught:
            async with db.session() as s:
                await s.execute(text("SELECT 1"))
        assert caught.value.code == "unavailable"
    finally:
        await db.close()


async def test_other_errors_keep_their_type() -> None:
    db = Database("sqlite+aiosqlite:///:memory:")
    try:
        with pytest.raises(ValueError, match="boom"):
            async with db.session():
                raise ValueError("boom")
    finally:
        await db.close()


async def test_connections_the_server_closed_are_replaced_at_checkout(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a ping per checkout, a pooled connection whose backend is gone (a
    restart, an administrator's terminate) is still never handed to a read; nor is
    one that sat idle long enough to have died unseen (pinged first)."""
    if runtime.db.is_sqlite:
        pytest.skip("PostgreSQL's pool")
    db = Database(runtime.db.url)
    try:

        async def backend_pids() -> set[int]:
            async def one() -> int:
                async with db.read() as conn:
                    pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                    await asyncio.sleep(0.05)  # held: the others take other connections
                    return int(pid)

            return set(await asyncio.gather(*(one() for _ in range(4))))

        pooled = await backend_pids()
        pids = {"pids": sorted(pooled)}
        async with runtime.db.read() as admin:
            await admin.execute(
                text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) pid"),
                pids,
            )
            alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)")
            while (await admin.execute(alive, pids)).scalar_one():
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # the pooled connections' event loop reads the close
        assert not (await backend_pids()) & pooled

        # Idle "long enough" (now: at once): pinged at checkout, and still served.
        monkeypatch.setattr(database, "PING_AFTER_IDLE", 0.0)
        assert len(await backend_pids()) == 4
    finally:
        await db.close()


async def test_open_pool_leaves_the_steady_connections_open(runtime: Runtime) -> None:
    db = Database(runtime.db.url)
    try:
        opened = await db.open_pool()
        assert opened > 1
        assert db.engine.sync_engine.pool.checkedin() == opened  # type: ignore[attr-defined]
    finally:
        await db.close()


def _synchronous(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


async def test_only_relaxed_writes_skip_the_fsync_on_sqlite(runtime: Runtime) -> None:
    """Chat's connection commits with synchronous=NORMAL (1); every other connection,
    the reading list's own writer included, keeps FULL (2)."""
    if not runtime.db.is_sqlite:
        pytest.skip("SQLite's synchronous levels")
    assert await runtime.db.write_relaxed(_synchronous) == 1
    assert await runtime.db.write(_synchronous) == 2
    async with runtime.db.session() as s:
        assert await s.scalar(text("PRAGMA synchronous")) == 2
    async with runtime.db.read() as conn:
        assert (await conn.execute(text("PRAGMA synchronous"))).scalar_one() == 2


def _add_series(conn: Connection, slug: str, fail: bool) -> str:
    conn.execute(insert(Manga).values(slug=slug, title=slug, status="ongoing"))
    if fail:
        raise ValueError("boom")
    return slug


@pytest.mark.parametrize("relaxed", [False, True])
async def test_a_plain_function_write_commits_whole_or_not_at_all(
    runtime: Runtime, relaxed: bool
) -> None:
    write = runtime.db.write_relaxed if relaxed else runtime.db.write
    kept, dropped = f"write-{uuid.uuid4().hex[:10]}", f"write-{uuid.uuid4().hex[:10]}"
    with pytest.raises(ValueError, match="boom"):
        await write(_add_series, dropped, True)
    assert await write(_add_series, kept, False) == kept
    async with runtime.db.read() as conn:
        found = await conn.scalars(select(Manga.slug).where(Manga.slug.in_([kept, dropped])))
        assert set(found) == {kept}


async def test_the_writers_close_with_the_database(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'closing.db'}")
    before = set(threading.enumerate())
    try:
        await db.migrate()
        assert await db.write_relaxed(_synchronous) == 1
        assert await db.write(_synchronous) == 2
        writers = [t for t in set(threading.enumerate()) - before if "sqlite-" in t.name]
        assert len(writers) == 2
    finally:
        await db.close()
    for writer in writers:
        writer.join(5)
        assert not writer.is_alive()


async def test_a_relaxed_write_that_cannot_get_the_lock_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT", 0.05)
    path = tmp_path / "locked.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with pytest.raises(Unavailable):
            await db.write_relaxed(_synchronous)
        other.execute("ROLLBACK")
        assert await db.write_relaxed(_synchronous) == 1
    finally:
        other.close()
        await db.close()
