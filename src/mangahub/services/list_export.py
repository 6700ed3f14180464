"""Export a reader's list as MAL XML (what MyAnimeList's importer takes) or as our
JSON (every field, read back by ``services.list_import`` to the same list)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from mangahub.domain.enums import MangaFormat, ReadingStatus
from mangahub.domain.errors import NotFound
from mangahub.lists import ImportedEntry, ListFormat, write_mal_xml, write_native_json
from mangahub.lists.records import SeriesRef
from mangahub.storage.database import Database
from mangahub.storage.models import Manga, ReadingEntry, User
from mangahub.storage.types import utcnow


@dataclass(frozen=True, slots=True)
class ExportFile:
    content: bytes
    filename: str
    media_type: str
    entries: int  # entries in the file (MAL: only those with a MAL id)


class ListExportService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def export(self, user_id: uuid.UUID, fmt: ListFormat) -> ExportFile:
        username, entries = await self._load(user_id)
        now = utcnow()
        stamp = int(now.timestamp())
        if fmt is ListFormat.MAL_XML:
            return ExportFile(
                write_mal_xml(entries, user_name=username),
                f"mangalist_{stamp}_-_{username}.xml",
                "application/xml",
                sum(1 for e in entries if e.series.mal_id),
            )
        return ExportFile(
            write_native_json(entries, exported_at=now),
            f"mangahub-list_{stamp}_{username}.json",
            "application/json",
            len(entries),
        )

    async def _load(self, user_id: uuid.UUID) -> tuple[str, list[ImportedEntry]]:
        stmt = (
            select(
                ReadingEntry,
                Manga.title,
                Manga.alt_titles,
                Manga.mal_id,
                Manga.anilist_id,
                Manga.mangadex_id,
                Manga.total_chapters,
                Manga.volumes,
                Manga.format,
            )
            .join(Manga, Manga.id == ReadingEntry.manga_id)
            .where(ReadingEntry.user_id == user_id)
            .order_by(ReadingEntry.added_at, ReadingEntry.manga_id)
        )
        async with self._db.session() as s:
            username = await s.scalar(select(User.username).where(User.id == user_id))
            if username is None:
                raise NotFound("user not found")
            rows = (await s.execute(stmt)).all()
        return username, [_entry(*row) for row in rows]


def _entry(
    e: ReadingEntry,
    title: str,
    alt_titles: list[str] | None,
    mal_id: int | None,
    anilist_id: int | None,
    mangadex_id: str | None,
    total_chapters: int | None,
    volumes: int | None,
    fmt: str,
) -> ImportedEntry:
    return ImportedEntry(
        series=SeriesRef(
            title=title,
            alt_titles=tuple(alt_titles or ()),
            mal_id=mal_id,
            anilist_id=anilist_id,
            mangadex_id=mangadex_id,
            total_chapters=total_chapters,
            volumes=volumes,
            format=MangaFormat(fmt),
            local_id=e.manga_id,
        ),
        status=ReadingStatus(e.status),
        chapter=float(e.chapter),
        volume=e.volume,
        score=e.score,
        started_on=e.started_on,
        finished_on=e.finished_on,
        rereads=e.rereads,
        rereading=e.rereading,
        notes=e.notes or None,
        added_at=e.added_at,
        updated_at=e.updated_at,
        device=e.device,
    )
