"""Our own JSON list format: every field of a reading entry, plus what identifies
its series anywhere (ids on MAL, AniList and MangaDex, title, size, format)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar

import orjson

from mangahub.domain.enums import MangaFormat, ReadingStatus
from mangahub.lists import values
from mangahub.lists.errors import ListFileError, ListTooLarge, ListValueError
from mangahub.lists.records import ImportedEntry, SeriesRef
from mangahub.lists.source import MAX_ENTRIES

FORMAT_NAME = "mangahub-list"
VERSION = 1

E = TypeVar("E", bound=StrEnum)


def is_native(doc: Mapping[str, Any]) -> bool:
    return doc.get("format") == FORMAT_NAME


def parse_native(doc: Mapping[str, Any]) -> Iterator[ImportedEntry]:
    if doc.get("version") != VERSION:
        raise ListFileError(f"unsupported {FORMAT_NAME} version {doc.get('version')!r}")
    entries = doc.get("entries")
    if not isinstance(entries, list):
        raise ListFileError(f"a {FORMAT_NAME} file needs an entries array")
    if len(entries) > MAX_ENTRIES:
        raise ListTooLarge(f"the list has more than {MAX_ENTRIES} entries")
    for raw in entries:
        if not isinstance(raw, Mapping):
            raise ListFileError("an entry is not an object")
        yield _entry(raw)


def _entry(raw: Mapping[str, Any]) -> ImportedEntry:
    manga = raw.get("manga")
    if not isinstance(manga, Mapping):
        raise ListFileError("an entry has no manga object")
    title = values.clean_text(
        _text(manga.get("title"), None, "manga.title"), limit=values.MAX_TITLE
    )
    if title is None:
        raise ListValueError("an entry's manga has no title", field="manga.title", value="")
    alt = manga.get("alt_titles") or []
    if not isinstance(alt, list):
        raise ListValueError("not a list of titles", title=title, field="alt_titles", value=alt)
    alt_titles = tuple(
        t for a in alt if (t := values.clean_text(_text(a, title, "alt_titles"), limit=500))
    )
    status = _enum(ReadingStatus, raw.get("status"), title, "status")
    fmt = manga.get("format")
    return ImportedEntry(
        series=SeriesRef(
            title=title,
            alt_titles=alt_titles,
            mal_id=values.source_id(manga.get("mal_id"), title=title, field="mal_id"),
            anilist_id=values.source_id(manga.get("anilist_id"), title=title, field="anilist_id"),
            mangadex_id=_mangadex_id(manga.get("mangadex_id"), title),
            total_chapters=_opt_count(manga.get("total_chapters"), title, "total_chapters"),
            volumes=_opt_count(manga.get("volumes"), title, "volumes"),
            format=None if fmt is None else _enum(MangaFormat, fmt, title, "format"),
            local_id=values.source_id(manga.get("id"), title=title, field="manga.id"),
        ),
        status=status,
        chapter=values.chapter(raw.get("chapter"), title=title),
        volume=_opt_count(raw.get("volume"), title, "volume"),
        score=_score(raw.get("score"), title),
        started_on=values.iso_date(raw.get("started_on"), title=title, field="started_on"),
        finished_on=values.iso_date(raw.get("finished_on"), title=title, field="finished_on"),
        rereads=values.count(raw.get("rereads"), title=title, field="rereads"),
        rereading=_bool(raw.get("rereading"), title),
        notes=values.clean_text(_text(raw.get("notes"), title, "notes"), limit=values.MAX_NOTES),
        added_at=values.iso_datetime(raw.get("added_at"), title=title, field="added_at"),
        updated_at=values.iso_datetime(raw.get("updated_at"), title=title, field="updated_at"),
        device=values.clean_text(_text(raw.get("device"), title, "device"), limit=100),
    )


def _mangadex_id(value: object, title: str) -> str | None:
    text = values.clean_text(_text(value, title, "mangadex_id"), limit=100)
    if text is not None and len(text) > 36:
        raise ListValueError("not a MangaDex id", title=title, field="mangadex_id", value=text)
    return text


def _text(value: object, title: str | None, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ListValueError("not text", title=title, field=field, value=value)


def _opt_count(value: object, title: str, field: str) -> int | None:
    return None if value is None else values.count(value, title=title, field=field)


def _score(value: object, title: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
        raise ListValueError(
            "score must be a whole number 1-10", title=title, field="score", value=value
        )
    return value


def _bool(value: object, title: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ListValueError("not true or false", title=title, field="rereading", value=value)
    return value


def _enum(kind: type[E], value: object, title: str, field: str) -> E:
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return kind(value)
    except ValueError:
        raise ListValueError(f"unknown {field}", title=title, field=field, value=value) from None


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def write_native_json(entries: Iterable[ImportedEntry], *, exported_at: datetime) -> bytes:
    """The whole list as our JSON; `parse_native` reads it back to equal entries."""
    rows = []
    for e in entries:
        s = e.series
        rows.append(
            {
                "manga": {
                    "id": s.local_id,
                    "title": s.title,
                    "alt_titles": list(s.alt_titles),
                    "mal_id": s.mal_id,
                    "anilist_id": s.anilist_id,
                    "mangadex_id": s.mangadex_id,
                    "total_chapters": s.total_chapters,
                    "volumes": s.volumes,
                    "format": None if s.format is None else s.format.value,
                },
                "status": e.status.value,
                "chapter": e.chapter,
                "volume": e.volume,
                "score": e.score,
                "started_on": _iso(e.started_on),
                "finished_on": _iso(e.finished_on),
                "rereads": e.rereads,
                "rereading": e.rereading,
                "notes": e.notes,
                "added_at": _iso(e.added_at),
                "updated_at": _iso(e.updated_at),
                "device": e.device,
            }
        )
    doc = {
        "format": FORMAT_NAME,
        "version": VERSION,
        "exported_at": exported_at.isoformat(),
        "entries": rows,
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)
