"""The database handle: losing the database is a typed, retryable error."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import text

from mangahub.domain.errors import Unavailable
from mangahub.storage.database import Database


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_database_is_unavailable() -> None:
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/nowhere")
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
