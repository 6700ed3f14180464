"""An admin's edit and a catalog import that overlap: neither loses the other's change."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from mangahub.app import Runtime
from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaStatus
from mangahub.domain.schemas import MangaUpdate
from tests.conftest import BACKEND, Backend


def series(title: str, mangadex_id: str, year: int) -> SeriesRecord:
    return SeriesRecord(
        title=title,
        status=MangaStatus.ONGOING,
        description="from the source",
        year=year,
        mangadex_id=mangadex_id,
    )


async def waiting_on_locks(conn: asyncpg.Connection) -> int:
    # Statistics are a snapshot per transaction unless cleared.
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    value = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return int(value)


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite runs one writer at a time")
async def test_an_admin_edit_made_during_an_import_is_kept(
    backend: Backend, runtime: Runtime
) -> None:
    assert backend.database_url is not None
    ids = [uuid.uuid4().hex for _ in range(2)]
    await runtime.catalog.import_series(
        [series("Race first", ids[0], 2001), series("Race second", ids[1], 2001)]
    )
    first, second = await runtime.catalog.find_by_source_ids(ids, [])

    # Another transaction holds the first row, so the import stops after reading both
    # series and before writing them: the window an admin edit could fall into.
    blocker = await asyncpg.connect(backend.database_url.replace("+asyncpg", ""))
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM manga WHERE id = $1 FOR UPDATE", first.id)
        # The import changes the year of both; it knows nothing about descriptions.
        importing = asyncio.create_task(
            runtime.catalog.import_series(
                [series("Race first", ids[0], 2002), series("Race second", ids[1], 2002)]
            )
        )
        async with asyncio.timeout(10):
            while await waiting_on_locks(blocker) < 1:
                await asyncio.sleep(0.02)
        editing = asyncio.create_task(
            runtime.catalog.update_manga(second.id, MangaUpdate(description="the admin's text"))
        )
        async with asyncio.timeout(10):
            while not editing.done() and await waiting_on_locks(blocker) < 2:
                await asyncio.sleep(0.02)
        await tx.rollback()
        assert await asyncio.wait_for(importing, 10) == 2
        await asyncio.wait_for(editing, 10)
    finally:
        await blocker.close()

    stored = await runtime.catalog.get_manga(second.id)
    assert stored.description == "the admin's text"  # the edit survived the import
    assert stored.year == 2002  # and the import's change is there too
