"""The settings every SQLite connection of the server opens with."""

from __future__ import annotations

from typing import Any, Literal

Synchronous = Literal["NORMAL", "FULL"]

CACHE_KIB = 32 << 10
"""Page cache of each connection, at most (KiB); filled only as pages are read."""
CHECKPOINT_PAGES = 10_000
"""WAL pages between two automatic checkpoints (SQLite's default: 1,000)."""
WAL_LIMIT_BYTES = 64 << 20
"""Size the WAL file is cut back to after a checkpoint."""


def configure(dbapi_conn: Any, synchronous: Synchronous) -> None:
    """Foreign keys on, WAL journal, ``synchronous`` as asked (FULL: a commit
    survives power loss; NORMAL: it survives a crash of the process), and the cache
    and checkpoint sizes above.

    Writes touch pages all over the reading list: a 32 MiB page cache instead of 2 MiB
    keeps them in memory, and checkpointing every 10,000 WAL pages instead of 1,000
    copies a page rewritten by many commits back into the database once, not once
    per commit. Every connection checkpoints by its own setting, so all share it."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
    finally:
        cursor.close()
