"""The database handle: one async engine, sessions, migrations, readiness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from mangahub.domain.errors import Unavailable
from mangahub.privatefiles import make_private_dir
from mangahub.storage.sqlite_settings import Synchronous, configure
from mangahub.storage.sqlite_writer import SqliteWriter

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Seconds to open a PostgreSQL connection and to run one statement.
CONNECT_TIMEOUT = 5.0
STATEMENT_TIMEOUT = 30.0
_T = TypeVar("_T")

# Seconds a pooled PostgreSQL connection may sit unused before it is pinged at checkout.
PING_AFTER_IDLE = 10.0
# Seconds an SQLite writer waits for another's lock before the write fails.
SQLITE_BUSY_TIMEOUT = 30.0
# The threads of write() and write_relaxed() on an SQLite file.
_WRITER_THREADS: dict[Synchronous, str] = {"FULL": "sqlite-writer", "NORMAL": "sqlite-relaxed"}


class Database:
    """Owns the engine; services open short units of work with :meth:`session`."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            # One writer at a time is SQLite's rule; wait for the lock instead of failing.
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
            _create_private_file(make_url(url).database)
            # A file cannot drop a connection: no ping per checkout. No rollback on
            # return either: sessions end their transactions themselves, and reads
            # (see read()) never open one, so the reset is a wasted thread hop.
            kwargs.update(pool_reset_on_return=None)
            # Last in, first out: back-to-back units of work (a group commit's batches)
            # take the same connection, whose page cache another connection's write
            # would have emptied (SQLite drops a connection's cache when the file
            # changed under it).
            if make_url(url).database not in (None, "", ":memory:"):  # a file's pool
                kwargs.update(pool_use_lifo=True)
        else:
            # No ping per checkout (one to three round trips per read): connections a
            # restart closed are replaced at checkout without one (_checkout_check).
            kwargs.update(pool_size=10, max_overflow=20, pool_timeout=10)
            if make_url(url).get_driver_name() == "asyncpg":
                # Nothing waits forever on a lost server: connecting and each statement
                # are bounded, and the timeout surfaces as Unavailable (503 / error frame).
                kwargs["connect_args"] = {
                    "timeout": CONNECT_TIMEOUT,
                    "command_timeout": STATEMENT_TIMEOUT,
                }
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            pool = self.engine.sync_engine.pool
            event.listen(pool, "checkin", _note_checkin)
            event.listen(pool, "checkout", _checkout_check(self.engine.dialect))
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Single reads run without BEGIN/COMMIT: SQLite's driver opens no transaction
        # for a SELECT; on PostgreSQL autocommit saves two round trips per read.
        self._read_engine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        # write() and write_relaxed() each have a connection of their own on an SQLite
        # file, by synchronous level.
        self._writers: dict[Synchronous, SqliteWriter] = {}
        self._writer_url = (
            make_url(url) if self.is_sqlite and _is_file(make_url(url).database) else None
        )

    async def write(self, transaction: Callable[..., _T], *args: Any) -> _T:
        """``transaction(connection, *args)`` (a plain function over a synchronous
        :class:`~sqlalchemy.engine.Connection`) as one transaction, committed when it
        returns; errors map to Unavailable as in :meth:`session`, and it is as durable.

        On an SQLite file it runs on a connection of its own (opened on first use,
        closed by :meth:`close`), in one hand-off to that connection's thread: a hot
        write path's statements and the Python between them then wait neither for
        a thread hop per statement nor for the event loop between two. Elsewhere
        (PostgreSQL, an in-memory SQLite database, which a second connection would
        not see) it runs in a :meth:`session`."""
        return await self._write_on("FULL", transaction, args)

    async def write_relaxed(self, transaction: Callable[..., _T], *args: Any) -> _T:
        """:meth:`write`, but on an SQLite file with ``synchronous=NORMAL``: the commit
        survives a crash or kill of the process, but a power loss or an OS crash may
        lose the last moments of such writes (every other connection runs ``FULL``).
        Only chat messages are written this way (docs/reliability.md)."""
        return await self._write_on("NORMAL", transaction, args)

    async def _write_on(
        self, synchronous: Synchronous, transaction: Callable[..., _T], args: tuple[Any, ...]
    ) -> _T:
        writer = self._sqlite_writer(synchronous)
        if writer is None:
            async with self.session() as s:
                conn = await s.connection()
                return await conn.run_sync(transaction, *args)
        with _unavailable_on_loss():
            return await writer.run(transaction, *args)

    def _sqlite_writer(self, synchronous: Synchronous) -> SqliteWriter | None:
        if self._writer_url is None:
            return None
        writer = self._writers.get(synchronous)
        if writer is None:
            writer = self._writers[synchronous] = SqliteWriter(
                self._writer_url,
                synchronous=synchronous,
                busy_timeout=SQLITE_BUSY_TIMEOUT,
                name=_WRITER_THREADS[synchronous],
            )
        return writer

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed on success, rolled back on any error.

        Losing the database (server down, connection dropped, pool exhausted) surfaces
        as the domain's Unavailable, so every door answers "retry later" the same way.
        """
        with _unavailable_on_loss():
            async with self.sessionmaker() as session, session.begin():
                yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read statement (or reads that need no common snapshot):
        no explicit transaction. Errors map to Unavailable as in :meth:`session`."""
        with _unavailable_on_loss():
            async with self._read_engine.connect() as conn:
                yield conn

    async def open_pool(self) -> int:
        """Open the pool's steady connections now (start-up), so that a crowd of first
        requests finds them instead of connecting one each; returns how many."""
        size = getattr(self.engine.sync_engine.pool, "size", None)
        if size is None:
            return 0
        async with contextlib.AsyncExitStack() as held:
            for _ in range(size()):
                await held.enter_async_context(self.read())
            return int(size())

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        if self.is_sqlite:
            Path(self.engine.url.database or "").parent.mkdir(parents=True, exist_ok=True)
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade_to_head)

    async def ping(self) -> None:
        async with asyncio.timeout(5), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            await writer.close()
        await self.engine.dispose()


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade_to_head(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


# SQLSTATEs that mean "the server cannot serve now" (connection failures, shutting
# down or starting up, too many connections), which asyncpg reports as plain errors.
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


@contextmanager
def _unavailable_on_loss() -> Iterator[None]:
    """Losing the database surfaces as the domain's Unavailable."""
    try:
        yield
    except (OperationalError, InterfaceError, SATimeoutError, OSError) as exc:
        raise Unavailable("database unavailable; retry later") from exc
    except DBAPIError as exc:
        if not _server_unavailable(exc):
            raise
        raise Unavailable("database unavailable; retry later") from exc


def _server_unavailable(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    return isinstance(state, str) and (state.startswith("08") or state in _UNAVAILABLE_STATES)


_CHECKED_IN_AT = "mangahub_checked_in_at"


def _note_checkin(_dbapi_conn: Any, record: Any) -> None:
    record.info[_CHECKED_IN_AT] = time.monotonic()


def _checkout_check(dialect: Dialect) -> Callable[[Any, Any, Any], None]:
    """What ``pool_pre_ping`` did on every checkout, for much less. A connection the
    server closed (restart, terminated backend) needs no round trip to be found: the
    driver saw its socket close. Only a connection idle for PING_AFTER_IDLE seconds,
    whose peer may have vanished silently meanwhile (a network drop), is pinged.
    DisconnectionError makes the pool replace the connection and check out again."""

    def check(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        is_closed = getattr(dbapi_conn.driver_connection, "is_closed", None)  # asyncpg
        if is_closed is not None and is_closed():
            raise DisconnectionError("connection closed by the server")
        idle_since = record.info.get(_CHECKED_IN_AT)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # Gone unseen: the pool's other connections are suspect too.
            raise DisconnectionError("ping failed", invalidate_pool=True) from exc

    return check


def _is_file(database: str | None) -> bool:
    """Whether an SQLite database name is a plain file path (not memory, not a URI)."""
    return database not in (None, "", ":memory:") and not str(database).startswith("file:")


def _create_private_file(database: str | None) -> None:
    """Create a new SQLite file owner-only (0600) before SQLite does with the umask's
    mode; its WAL and shared-memory files copy the mode of the database file."""
    if database is None or not _is_file(database):
        return
    path = Path(database)
    if path.exists():
        return
    make_private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # FULL: a commit survives power loss, so an acknowledged write is really stored.
    configure(dbapi_conn, "FULL")
