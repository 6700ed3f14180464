"""The on-disk queue of progress updates waiting for the server.

An SQLite file in the state directory (``outbox.db``), written with
``synchronous=FULL`` so a queued update survives a crash or power loss once
:meth:`Outbox.put` returns. The CLI appends; the sync daemon sends the oldest
first, one at a time, and deletes a row only after the server acknowledged it —
so updates arrive in order and none is lost. (If the connection drops after the
server stored an update but before its ack arrived, the update is sent again;
progress is last-write-wins, so the repeat leaves the same row behind.)
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mangahub.cli.output import EXIT_ERROR, EXIT_UNAVAILABLE, CliError
from mangahub.cli.paths import private_dir, state_dir

MAX_PENDING: Final = 10_000
"""Bound on queued updates per server; past it ``put`` refuses instead of growing."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    server TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    manga_id INTEGER NOT NULL,
    chapter REAL NOT NULL,
    status TEXT NOT NULL,
    queued_at REAL NOT NULL,
    volume INTEGER
)
"""
# Queues written before volumes were sent lack the column; "" as status means "keep
# the entry's status" (the column predates optional statuses and stays NOT NULL).
_ADD_VOLUME = "ALTER TABLE outbox ADD COLUMN volume INTEGER"
_COLUMNS = "seq, message_id, manga_id, chapter, status, queued_at, volume"


@dataclass(frozen=True)
class QueuedUpdate:
    seq: int
    message_id: str
    manga_id: int
    chapter: float
    status: str
    queued_at: float
    volume: int | None = None


class Outbox:
    """Queued progress updates, per server URL."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or private_dir(state_dir()) / "outbox.db"
        self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # fsync on every commit
            self._db.execute(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox)")}
            if "volume" not in columns:
                self._db.execute(_ADD_VOLUME)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise CliError(
                f"the update queue {self.path} is unreadable ({exc}); "
                "move it aside to start an empty one",
                EXIT_ERROR,
            ) from None

    def close(self) -> None:
        self._db.close()

    def put(
        self,
        server: str,
        manga_id: int,
        chapter: float,
        status: str | None,
        volume: int | None = None,
    ) -> QueuedUpdate:
        """Queue an update; ``status`` None keeps the entry's own status."""
        status = status or ""
        message_id = f"q-{uuid.uuid4().hex}"
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                if self.count(server) >= MAX_PENDING:
                    raise CliError(
                        f"{MAX_PENDING} updates are already queued for {server}; "
                        "run `mangahub sync connect` to send them",
                        EXIT_UNAVAILABLE,
                    )
                cursor = self._db.execute(
                    "INSERT INTO outbox (server, message_id, manga_id, chapter, status, queued_at,"
                    " volume) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (server, message_id, manga_id, chapter, status, time.time(), volume),
                )
        except sqlite3.Error as exc:  # disk full, read-only, locked for too long
            raise CliError(f"cannot queue the update in {self.path}: {exc}", EXIT_ERROR) from None
        seq = cursor.lastrowid or 0
        return QueuedUpdate(seq, message_id, manga_id, chapter, status, time.time(), volume)

    def oldest(self, server: str) -> QueuedUpdate | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE server = ? ORDER BY seq LIMIT 1",
            (server,),
        ).fetchone()
        return QueuedUpdate(*row) if row else None

    def contains(self, message_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM outbox WHERE message_id = ?", (message_id,))
        return row.fetchone() is not None

    def count(self, server: str) -> int:
        row = self._db.execute("SELECT count(*) FROM outbox WHERE server = ?", (server,))
        return int(row.fetchone()[0])

    def remove(self, message_id: str) -> None:
        self._db.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
