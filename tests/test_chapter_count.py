"""A chapter check that stores an extra chapter (12.5) counts the series as 12
chapters; progress at that extra chapter is then accepted, one past the count not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx

from mangahub.app import Runtime
from mangahub.services.source_sync import SourceSyncService, TrackedSeries
from mangahub.sources.models import SourceChapter
from mangahub.storage.models import Manga
from tests.conftest import MakeUser


def chapter(series: str, number: float) -> SourceChapter:
    return SourceChapter(
        source_id=str(uuid.uuid4()),
        manga_source_id=series,
        number=number,
        title=None,
        volume=None,
        language="en",
        published_at=datetime.now(UTC),
        scanlation_group=None,
    )


async def test_progress_at_a_stored_extra_chapter_is_accepted(
    runtime: Runtime, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    mangadex_id = str(uuid.uuid4())
    async with runtime.db.session() as s:
        manga = Manga(
            slug=f"extra-{mangadex_id[:8]}",
            title="Extra",
            status="ongoing",
            mangadex_id=mangadex_id,
        )
        s.add(manga)
        await s.flush()
        manga_id = manga.id
    check = SourceSyncService(runtime.db, runtime.notifications)
    series = TrackedSeries(manga_id, mangadex_id, "Extra", None, checked_before=False)
    stored = await check.store_chapters(
        series, [chapter(mangadex_id, n) for n in (11.0, 12.0, 12.5)]
    )
    assert stored.stored == 3
    details = (await client.get(f"/api/manga/{manga_id}")).json()
    assert details["total_chapters"] == 12

    reader = await make_user()
    for number, status in ((12.5, 200), (12.9, 200), (13.0, 422)):
        r = await client.put(
            "/api/users/progress",
            json={"manga_id": manga_id, "chapter": number, "status": "reading"},
            headers=reader.headers,
        )
        assert r.status_code == status, (number, r.text)
