"""MyAnimeList XML (MAL's own export and the same format written by other tools).

Streamed with a hardened expat (defusedxml): no entity expansion, no external
entities or DTDs fetched; entries are parsed and dropped one at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from mangahub.domain.enums import ReadingStatus
from mangahub.lists import values
from mangahub.lists.errors import AnimeListRefused, ListFileError, ListTooLarge, ListValueError
from mangahub.lists.records import ImportedEntry, SeriesRef
from mangahub.lists.source import MAX_ENTRIES

ROOT = "myanimelist"

# Keys are the status with case, spaces, dashes and underscores dropped; digits are
# the numeric codes some tools (and MAL's older API) write.
_STATUSES = {
    "reading": ReadingStatus.READING,
    "1": ReadingStatus.READING,
    "completed": ReadingStatus.COMPLETED,
    "2": ReadingStatus.COMPLETED,
    "onhold": ReadingStatus.ON_HOLD,
    "3": ReadingStatus.ON_HOLD,
    "dropped": ReadingStatus.DROPPED,
    "4": ReadingStatus.DROPPED,
    "plantoread": ReadingStatus.PLAN_TO_READ,
    "6": ReadingStatus.PLAN_TO_READ,
}
_YES = {"yes", "1", "true"}
_NO = {"no", "0", "false", ""}
# Tag spellings seen in files written by other tools, mapped to MAL's own.
_ALIASES = {
    "series_mangadb_id": "manga_mangadb_id",
    "manga_id": "manga_mangadb_id",
    "series_title": "manga_title",
    "my_read_chapter": "my_read_chapters",
    "my_read_volume": "my_read_volumes",
    "my_times_reread": "my_times_read",
    "my_reread_times": "my_times_read",
    "my_comment": "my_comments",
    "my_start": "my_start_date",
    "my_finish": "my_finish_date",
}


def parse_mal_xml(stream: BinaryIO) -> Iterator[ImportedEntry]:
    """Yield the entries of a MAL manga list; raise a `ListFileError` family error
    for anything else (another root, an anime list, broken or hostile XML)."""
    root: Element | None = None
    depth = 0
    seen = 0
    try:
        for event, elem in iterparse(stream, events=("start", "end")):
            if event == "start":
                depth += 1
                if root is None:
                    if elem.tag != ROOT:
                        raise ListFileError(
                            f"not a MyAnimeList export: the root element is <{elem.tag}>, "
                            f"expected <{ROOT}>"
                        )
                    root = elem
                elif depth == 2 and elem.tag == "anime":
                    raise AnimeListRefused()
                continue
            depth -= 1
            if depth != 1 or root is None:
                continue
            if elem.tag == "myinfo":
                if (elem.findtext("user_export_type") or "").strip() == "1":
                    raise AnimeListRefused()
            elif elem.tag == "manga":
                seen += 1
                if seen > MAX_ENTRIES:
                    raise ListTooLarge(f"the list has more than {MAX_ENTRIES} entries")
                yield _entry(_fields(elem))
            root.clear()  # entries already read are not kept in memory
    except DefusedXmlException as exc:
        raise ListFileError(
            f"the XML declares entities or external references, which list files never do "
            f"({type(exc).__name__})"
        ) from None
    except ParseError as exc:
        raise ListFileError(f"the XML is malformed or truncated: {exc}") from None
    if root is None:
        raise ListFileError("the file is empty")


def _fields(elem: Element) -> dict[str, str]:
    fields: dict[str, str] = {}
    for child in elem:
        tag = child.tag.strip().lower() if isinstance(child.tag, str) else ""
        fields[_ALIASES.get(tag, tag)] = child.text or ""
    return fields


def _entry(f: dict[str, str]) -> ImportedEntry:
    title = values.clean_text(f.get("manga_title"), limit=values.MAX_TITLE)
    mal_id = values.source_id(f.get("manga_mangadb_id"), title=title, field="manga_mangadb_id")
    if title is None:
        if mal_id is None:
            raise ListValueError("an entry has neither an id nor a title", field="manga", value="")
        title = f"MyAnimeList #{mal_id}"
    return ImportedEntry(
        series=SeriesRef(
            title=title,
            mal_id=mal_id,
            total_chapters=values.optional_count(
                f.get("manga_chapters"), title=title, field="manga_chapters"
            ),
            volumes=values.optional_count(
                f.get("manga_volumes"), title=title, field="manga_volumes"
            ),
        ),
        status=_status(f.get("my_status"), title),
        chapter=values.chapter(f.get("my_read_chapters"), title=title, field="my_read_chapters"),
        volume=values.optional_count(
            f.get("my_read_volumes"), title=title, field="my_read_volumes"
        ),
        score=values.score_1_10(
            values.number(f.get("my_score"), title=title, field="my_score"),
            scale=10,
            title=title,
            field="my_score",
        ),
        started_on=values.mal_date(f.get("my_start_date"), title=title, field="my_start_date"),
        finished_on=values.mal_date(f.get("my_finish_date"), title=title, field="my_finish_date"),
        rereads=values.count(f.get("my_times_read"), title=title, field="my_times_read"),
        rereading=_flag(f.get("my_rereading"), title),
        notes=values.clean_text(f.get("my_comments"), limit=values.MAX_NOTES),
    )


def _status(raw: str | None, title: str) -> ReadingStatus:
    key = "".join(ch for ch in (raw or "").lower() if ch not in " -_")
    if not key:
        return ReadingStatus.PLAN_TO_READ  # MAL's default
    if key in {"watching", "plantowatch"}:
        raise AnimeListRefused()
    status = _STATUSES.get(key)
    if status is None:
        raise ListValueError("unknown status", title=title, field="my_status", value=raw)
    return status


def _flag(raw: str | None, title: str) -> bool:
    key = (raw or "").strip().lower()
    if key in _YES:
        return True
    if key in _NO:
        return False
    raise ListValueError("not YES or NO", title=title, field="my_rereading", value=raw)
