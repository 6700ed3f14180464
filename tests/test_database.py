"""The database handle: losing the database is a typed, retryable error."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mangahub.domain.errors import Unavailable
from mangahub.storage.database import Database
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
