"""A dedicated SQLite connection for one hot write path (chat messages).

Through the async engine a transaction costs one hand-off to aiosqlite's thread per
driver call (BEGIN, each statement, each fetch, COMMIT), each a thread wake-up.
Here a whole transaction is a plain function run on the connection's own thread, so
it costs one hand-off there and one back: :meth:`SqliteWriter.run` calls it between
``BEGIN IMMEDIATE`` and ``COMMIT`` (``ROLLBACK`` if it raises).

``BEGIN IMMEDIATE`` takes SQLite's write lock before the first read, so the reads of
a transaction and its writes see one state; another writer (the engine's own
connections) waits for the lock under the busy timeout, and so does this one.

The connection's ``synchronous`` level is its own (WAL mode keeps it per
connection): the chat store commits with ``NORMAL`` (see ``docs/reliability.md``,
"Chat on SQLite").
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import URL, Connection, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.dml import UpdateBase

from mangahub.storage.sqlite_settings import Synchronous, configure

_T = TypeVar("_T")


class SqliteWriter:
    """One SQLite connection on one thread; each :meth:`run` is one transaction."""

    def __init__(
        self,
        url: URL,
        *,
        synchronous: Synchronous,
        busy_timeout: float,
        name: str = "sqlite-writer",
    ) -> None:
        self._engine = create_engine(
            url.set(drivername="sqlite"),
            poolclass=NullPool,  # the one connection is held by this object
            connect_args={"timeout": busy_timeout, "check_same_thread": False},
        )
        event.listen(self._engine, "connect", _pragmas(synchronous))
        event.listen(self._engine, "begin", _begin_immediate)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: Connection | None = None  # opened on the thread by the first run
        self._closed = False

    async def run(self, transaction: Callable[[Connection], _T], *args: Any) -> _T:
        """``transaction(connection, *args)`` on the writer's thread, committed when it
        returns, rolled back when it raises (the exception is raised here)."""
        if self._closed:
            raise RuntimeError("the SQLite writer is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._in_transaction, transaction, args)

    async def close(self) -> None:
        """Close the connection after the transactions already handed over."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, self._close_connection)
        finally:
            self._thread.shutdown(wait=False)

    def _in_transaction(self, transaction: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            conn = self._conn = self._engine.connect()
        with conn.begin():
            return transaction(conn, *args)

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._engine.dispose()


class HotStatement:
    """A Core statement run on an SQLite writer's driver connection: compiled once,
    its parameters converted by their column types (UUIDs, datetimes) as SQLAlchemy
    would, and none of SQLAlchemy's per-execution work (a hot path's statement costs
    a fraction of it). Its result columns must need no conversion (integers, text).

    :meth:`rows` returns None on a connection it cannot use (not the pysqlite driver,
    e.g. PostgreSQL or aiosqlite): the caller executes the statement as usual."""

    def __init__(self, statement: UpdateBase) -> None:
        self.statement = statement
        # (dialect, SQL, [(parameter, converter or None)] in order), swapped whole:
        # writers of several databases (tests) may share the statement.
        self._compiled: tuple[Dialect, str, list[tuple[str, Any]]] | None = None

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any] | None:
        driver = conn.connection.driver_connection
        if not isinstance(driver, sqlite3.Connection):
            return None
        compiled = self._compiled
        if compiled is None or compiled[0] is not conn.dialect:
            compiled = self._compiled = self._compile(conn.dialect)
        _, sql, binds = compiled
        values = [params[n] if convert is None else convert(params[n]) for n, convert in binds]
        with _as_sqlalchemy_errors(sql, values):
            return driver.execute(sql, values).fetchall()

    def _compile(self, dialect: Dialect) -> tuple[Dialect, str, list[tuple[str, Any]]]:
        compiled = self.statement.compile(dialect=dialect)
        binds = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup or []
        ]
        return dialect, compiled.string, binds


def _pragmas(synchronous: Synchronous) -> Callable[[Any, Any], None]:
    def apply(dbapi_conn: Any, _record: Any) -> None:
        # No implicit BEGIN from the driver: _begin_immediate says how a transaction starts.
        dbapi_conn.isolation_level = None
        configure(dbapi_conn, synchronous)

    return apply


def _begin_immediate(conn: Connection) -> None:
    # On the driver: a statement through SQLAlchemy costs more than SQLite's BEGIN.
    driver: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
    with _as_sqlalchemy_errors("BEGIN IMMEDIATE", ()):
        driver.execute("BEGIN IMMEDIATE")


@contextlib.contextmanager
def _as_sqlalchemy_errors(sql: str, params: Any) -> Iterator[None]:
    """The driver's errors as SQLAlchemy raises them (OperationalError for a lock
    not granted within the busy timeout, IntegrityError...), so that callers handle
    one set of exceptions whichever way a statement ran."""
    try:
        yield
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc
