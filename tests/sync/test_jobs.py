"""The sync jobs against the fake MangaDex and AniList over real sockets, on the run's
backend: import, idempotent re-runs, new-chapter notifications, failures."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from mangahub.catalog.records import SeriesRecord
from mangahub.domain.enums import MangaStatus, NotificationKind, ReadingStatus
from mangahub.sources.models import SourceRejected
from mangahub.sources.registry import SourceClients
from mangahub.storage.models import ChapterRow, Manga, Notification, SyncState
from mangahub.sync.runner import JobFailed
from tests.fakes.sources import FakeSources
from tests.sync.conftest import MakeRunner, SyncEnv, chapter_entities, register

NAGATORO = "d86cf65b-5f6c-437d-a0af-19a31f94ec55"


async def count(env: SyncEnv, model: Any) -> int:
    async with env.runtime.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def manga_snapshot(env: SyncEnv) -> list[tuple[Any, ...]]:
    async with env.runtime.db.session() as s:
        rows = await s.execute(
            select(
                Manga.id, Manga.mangadex_id, Manga.title, Manga.updated_at, Manga.total_chapters
            ).order_by(Manga.id)
        )
        return [tuple(r) for r in rows.all()]


async def state_row(env: SyncEnv, job: str) -> SyncState:
    async with env.runtime.db.session() as s:
        row = await s.get(SyncState, job)
        assert row is not None
        return row


async def test_import_stores_every_fixture_series_and_a_rerun_changes_nothing(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    reader = await register(env.runtime)
    outcome = await make_runner().run("mangadex_import")

    assert await count(env, Manga) == len(fake.manga_ids) == 132
    async with env.runtime.db.session() as s:
        stored = set((await s.scalars(select(Manga.mangadex_id))).all())
        nagatoro = await s.scalar(select(Manga).where(Manga.mangadex_id == NAGATORO))
    assert stored == set(fake.manga_ids)
    assert nagatoro is not None
    assert "Nagatoro" in nagatoro.title
    assert nagatoro.last_synced_at is not None
    # Pages of 100 with authors, artists and cover art, oldest first.
    pages = [r for r in fake.requests_to("mangadex") if r.path == "/manga"]
    assert len(pages) == 2
    for request in pages:
        assert request.param("limit") == "100"
        assert request.param("order[createdAt]") == "asc"
        includes = {v for k, v in request.query if k == "includes[]"}
        assert includes == {"author", "artist", "cover_art"}
    assert outcome.counts["series_seen"] == 132
    row = await state_row(env, "mangadex_import")
    assert row.status == "done" and row.cursor is None and row.error is None
    assert row.lease_owner is None and row.last_success_at is not None
    assert row.metadata_["series_written"] == 132
    assert row.metadata_["newest_created_at"]

    before = await manga_snapshot(env)
    again = await make_runner().run("mangadex_import")
    assert again.counts["series_written"] == 0
    assert await manga_snapshot(env) == before
    notes, _ = await env.runtime.notifications.list(reader, False, 1, 50)
    assert notes == []


async def test_a_cover_art_include_lands_as_a_cover_url(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    await make_runner().run("mangadex_import")
    async with env.runtime.db.session() as s:
        covers = (
            await s.scalars(select(Manga.cover_url).where(Manga.cover_url.is_not(None)))
        ).all()
    assert covers, "the recorded page with includes[]=cover_art has file names"
    assert all(c.startswith("https://uploads.mangadex.org/covers/") for c in covers)


async def follow(env: SyncEnv, user_id: uuid.UUID, mangadex_id: str) -> int:
    async with env.runtime.db.session() as s:
        manga_id = await s.scalar(select(Manga.id).where(Manga.mangadex_id == mangadex_id))
    assert manga_id is not None
    await env.runtime.reading_list.add(user_id, manga_id, {"status": ReadingStatus.READING})
    return int(manga_id)


async def new_chapter_notes(env: SyncEnv, user_id: uuid.UUID) -> list[Any]:
    notes, _ = await env.runtime.notifications.list(user_id, False, 1, 100)
    return [n for n in notes if n.kind == NotificationKind.NEW_CHAPTER]


async def test_new_chapters_notify_each_follower_once_and_nobody_else(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    await make_runner().run("mangadex_import")
    target = fake.manga_ids[0]
    fake.add_chapters(target, chapter_entities(target, ["1", "2", "2.5"]))
    # Another language and a second group's copy of chapter 2 are not new English chapters.
    fake.add_chapters(target, chapter_entities(target, ["3"], language="fr"))
    fake.add_chapters(target, chapter_entities(target, ["2"]))
    alice, bob, carol = [await register(env.runtime, n) for n in ("alice", "bob", "carol")]
    manga_id = await follow(env, alice, target)
    await follow(env, bob, target)

    first = await make_runner().run("mangadex_chapters")
    # The first check stores the back catalog silently.
    assert first.counts["chapters_stored"] == 3
    assert first.counts["notified"] == 0
    assert first.counts["series_checked"] == 132
    async with env.runtime.db.session() as s:
        numbers = sorted(
            (
                await s.scalars(select(ChapterRow.number).where(ChapterRow.manga_id == manga_id))
            ).all()
        )
        total = await s.scalar(select(Manga.total_chapters).where(Manga.id == manga_id))
    assert numbers == [1.0, 2.0, 2.5]
    assert total is not None and total >= 2
    feed = [r for r in fake.requests_to("mangadex") if r.path.endswith("/feed")]
    assert {r.param("translatedLanguage[]") for r in feed} == {"en"}

    fake.add_chapters(target, chapter_entities(target, ["3", "4"]))
    second = await make_runner().run("mangadex_chapters")
    assert second.counts["chapters_stored"] == 2
    assert second.counts["notified"] == 4  # two chapters × two followers
    for reader in (alice, bob):
        notes = await new_chapter_notes(env, reader)
        assert sorted(n.data["chapter"] for n in notes) == [3.0, 4.0]
        assert all(n.manga_id == manga_id for n in notes)
    assert await new_chapter_notes(env, carol) == []
    async with env.runtime.db.session() as s:
        grown = await s.scalar(select(Manga.total_chapters).where(Manga.id == manga_id))
    assert grown == 4

    # A re-run finds nothing new: no rows, no notifications.
    chapters_before = await count(env, ChapterRow)
    notes_before = await count(env, Notification)
    third = await make_runner().run("mangadex_chapters")
    assert third.counts["chapters_stored"] == 0 and third.counts["notified"] == 0
    assert await count(env, ChapterRow) == chapters_before
    assert await count(env, Notification) == notes_before


async def test_the_poll_imports_series_created_since_its_cursor(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    reader = await register(env.runtime)
    await make_runner().run("mangadex_import")
    imported = await state_row(env, "mangadex_import")
    newest = imported.metadata_["newest_created_at"]

    outcome = await make_runner().run("mangadex_poll")
    polls = [r for r in fake.requests_to("mangadex") if r.param("createdAtSince")]
    assert polls and polls[0].param("createdAtSince") == newest[:19]
    # Only the newest series is at or after the cursor, and it is already stored.
    assert outcome.counts["series_new"] == 0
    assert (await state_row(env, "mangadex_poll")).cursor == newest
    notes, _ = await env.runtime.notifications.list(reader, False, 1, 50)
    assert notes == []


async def test_the_poll_announces_series_new_to_the_catalog(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    readers = [await register(env.runtime) for _ in range(2)]
    # A cursor from long ago: every fixture series is created after it.
    runner = make_runner()
    await runner.store.acquire("mangadex_poll", "setup")
    await runner.store.finish(
        "mangadex_poll", "setup", cursor="2000-01-01T00:00:00+00:00", metadata={}
    )

    outcome = await runner.run("mangadex_poll")
    assert outcome.counts["series_new"] == 132
    assert await count(env, Manga) == 132
    for reader in readers:
        notes, total = await env.runtime.notifications.list(reader, False, 1, 1)
        assert total == 132 and notes[0].kind == NotificationKind.NEW_MANGA
    again = await make_runner().run("mangadex_poll")
    assert again.counts["series_new"] == 0 and again.counts["notified"] == 0


async def test_429_with_retry_after_and_bursts_of_500_are_survived(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    fake.fail_next("mangadex", 429, headers={"Retry-After": "1"})
    fake.fail_next("mangadex", 500, count=3)
    outcome = await make_runner().run("mangadex_import")
    assert outcome.counts["series_seen"] == 132
    assert await count(env, Manga) == 132
    statuses = [r.status for r in fake.requests_to("mangadex")]
    assert statuses[:4] == [429, 500, 500, 500]
    after_429 = fake.requests_to("mangadex")[1].at - fake.requests_to("mangadex")[0].at
    assert after_429 >= 0.95, "Retry-After: 1 was honoured"
    assert (await state_row(env, "mangadex_import")).status == "done"


async def test_a_400_fails_the_job_at_once_with_the_error_recorded(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    fake.fail_next("mangadex", 400)
    with pytest.raises(JobFailed) as failed:
        await make_runner().run("mangadex_import")
    assert "HTTP 400" in failed.value.error and "injected failure" in failed.value.error
    assert [r.status for r in fake.requests_to("mangadex")] == [400], "not retried"
    row = await state_row(env, "mangadex_import")
    assert row.status == "failed" and row.lease_owner is None
    assert row.error is not None and "HTTP 400" in row.error
    assert row.metadata_["failures"] == 1
    assert await count(env, Manga) == 0

    # The next run succeeds and clears the error.
    await make_runner().run("mangadex_import")
    row = await state_row(env, "mangadex_import")
    assert row.status == "done" and row.error is None and row.metadata_["failures"] == 0


async def test_a_failure_mid_import_resumes_from_the_committed_page(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    runner = make_runner()
    first_page = await runner.ctx.need_mangadex().list_manga(offset=0, limit=100)
    fake.reset()

    # Page one succeeds, page two is refused.
    original = runner.ctx.mangadex
    calls = 0

    class SecondPageRefused:
        async def list_manga(self, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:
                fake.fail_next("mangadex", 403)
            assert original is not None
            return await original.list_manga(**kwargs)

        async def chapter_feed(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("not used")

    runner.ctx.mangadex = SecondPageRefused()
    with pytest.raises(JobFailed):
        await runner.run("mangadex_import")
    row = await state_row(env, "mangadex_import")
    assert row.status == "failed" and row.cursor is not None and '"offset": 100' in row.cursor
    assert await count(env, Manga) == len(first_page.items)

    fake.reset()
    runner.ctx.mangadex = original
    await runner.run("mangadex_import")
    offsets = [r.param("offset") for r in fake.requests_to("mangadex")]
    assert offsets == ["100"], "resumed at the committed cursor"
    assert await count(env, Manga) == 132


async def test_anilist_enrichment_adds_titles_and_ids_by_id_link_and_by_title(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner, clients: SourceClients
) -> None:
    await make_runner().run("mangadex_import")
    # A series known by title only (no source ids), named as an AniList entry is.
    await env.runtime.catalog.import_series(
        [SeriesRecord(title="chainsaw  MAN", status=MangaStatus.ONGOING)]
    )
    assert clients.anilist is not None
    chainsaw = await clients.anilist.find("Chainsaw Man")
    assert chainsaw is not None and chainsaw.record.anilist_id is not None
    async with env.runtime.db.session() as s:
        rows = await s.execute(
            select(Manga.anilist_id, Manga.id).where(Manga.anilist_id.is_not(None))
        )
        linked = {int(a): int(m) for a, m in rows.all()}
    known = {m.record.anilist_id: m for m in await clients.anilist.media(list(linked))}
    assert known, "some fixture series link an AniList entry the fake serves (links.al)"
    fake.reset()

    outcome = await make_runner().run("anilist_enrich")
    assert outcome.counts["series_seen"] == 133
    assert outcome.counts["matched_by_title"] >= 1
    assert all(r.method == "POST" for r in fake.requests_to("anilist"))
    async with env.runtime.db.session() as s:
        for anilist_id, entry in known.items():
            manga = await s.get(Manga, linked[anilist_id])
            assert manga is not None
            titles = {manga.title, *manga.alt_titles}
            assert {entry.record.title, *entry.record.alt_titles} <= titles
        by_title = await s.scalar(select(Manga).where(Manga.title == "chainsaw  MAN"))
    assert by_title is not None and by_title.anilist_id == chainsaw.record.anilist_id
    assert chainsaw.record.title in by_title.alt_titles

    before = await manga_snapshot(env)
    again = await make_runner().run("anilist_enrich")
    assert again.counts["series_enriched"] == 0
    assert await manga_snapshot(env) == before


async def test_an_interrupted_chapter_check_resumes_with_the_series_not_yet_checked(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    await make_runner().run("mangadex_import")
    runner = make_runner()
    original = runner.ctx.mangadex
    assert original is not None
    calls = 0

    class RefusesTheFortiethFeed:
        async def list_manga(self, **kwargs: Any) -> Any:
            raise AssertionError("not used")

        async def chapter_feed(self, mangadex_id: str, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 40:
                raise SourceRejected("mangadex", 403, "forbidden")
            return await original.chapter_feed(mangadex_id, **kwargs)

    runner.ctx.mangadex = RefusesTheFortiethFeed()
    with pytest.raises(JobFailed, match="HTTP 403"):
        await runner.run("mangadex_chapters")
    row = await state_row(env, "mangadex_chapters")
    assert row.status == "failed" and row.cursor is not None
    async with env.runtime.db.session() as s:
        checked = await s.scalar(
            select(func.count()).where(Manga.last_chapter_check_at.is_not(None))
        )
    assert checked is not None and 0 < checked < 132

    fake.reset()
    runner.ctx.mangadex = original
    resumed = await runner.run("mangadex_chapters")
    assert resumed.counts["series_checked"] == 132 - checked
    assert len(fake.requests_to("mangadex")) == 132 - checked
    assert (await state_row(env, "mangadex_chapters")).cursor is None


async def test_a_lettered_chapter_is_stored_and_the_rest_of_the_feed_too(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    await make_runner().run("mangadex_import")
    target = fake.manga_ids[0]
    fake.add_chapters(target, chapter_entities(target, ["1", "2a", "3"]))
    done = await make_runner().run("mangadex_chapters")
    assert done.counts["series_checked"] == 132
    async with env.runtime.db.session() as s:
        numbers = (
            await s.scalars(
                select(ChapterRow.number)
                .join(Manga, Manga.id == ChapterRow.manga_id)
                .where(Manga.mangadex_id == target)
                .order_by(ChapterRow.number)
            )
        ).all()
    assert [float(n) for n in numbers] == [1.0, 2.0, 3.0]


async def test_a_feed_longer_than_mangadex_result_window_does_not_fail_the_check(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    await make_runner().run("mangadex_import")
    target = fake.manga_ids[0]
    # MangaDex answers 400 for any feed page reaching past 10,000 entries.
    fake.add_chapters(target, chapter_entities(target, [str(n) for n in range(1, 10_102)]))
    done = await make_runner().run("mangadex_chapters")
    assert done.counts["series_checked"] == 132
    assert done.counts["chapters_stored"] == 10_000
    feed = [r for r in fake.requests_to("mangadex") if r.path.endswith(f"{target}/feed")]
    assert all(int(r.param("offset") or 0) + int(r.param("limit") or 0) <= 10_000 for r in feed)


async def test_the_poll_does_not_announce_a_stored_series_it_only_links(
    env: SyncEnv, fake: FakeSources, make_runner: MakeRunner
) -> None:
    reader = await register(env.runtime)
    # Already in the catalog by its AniList id (MangaDex's links.al), without a MangaDex id.
    await env.runtime.catalog.import_series(
        [SeriesRecord(title="Nagatoro", status=MangaStatus.ONGOING, anilist_id=100664)]
    )
    runner = make_runner()
    await runner.store.acquire("mangadex_poll", "setup")
    await runner.store.finish(
        "mangadex_poll", "setup", cursor="2000-01-01T00:00:00+00:00", metadata={}
    )

    outcome = await runner.run("mangadex_poll")
    assert await count(env, Manga) == 132
    async with env.runtime.db.session() as s:
        linked = await s.scalar(select(Manga.mangadex_id).where(Manga.anilist_id == 100664))
    assert linked == NAGATORO
    assert outcome.counts["series_new"] == 131
    _, total = await env.runtime.notifications.list(reader, False, 1, 1)
    assert total == 131
