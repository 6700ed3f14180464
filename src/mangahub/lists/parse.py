"""One entry point: bytes of any supported list file → typed entries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from mangahub.lists.anilist import collection_of, parse_anilist
from mangahub.lists.errors import ListFileError
from mangahub.lists.malxml import parse_mal_xml
from mangahub.lists.native import is_native, parse_native
from mangahub.lists.records import ImportedEntry, ListFormat
from mangahub.lists.source import head, open_stream, read_all

_BOM = b"\xef\xbb\xbf"
_UNKNOWN = (
    "not a list file we can read: expected a MyAnimeList XML export (.xml or .xml.gz), "
    "an AniList MediaListCollection JSON or a MangaHub JSON export"
)


@dataclass(frozen=True, slots=True)
class ParsedList:
    format: ListFormat
    entries: list[ImportedEntry]


def parse_list(data: bytes) -> ParsedList:
    """Detect the format from the content (gzip or not) and read every entry.
    Raises `ListFileError`, `ListTooLarge`, `ListValueError` or `AnimeListRefused`."""
    stream = open_stream(data)
    first = head(stream).removeprefix(_BOM).lstrip()
    if first.startswith(b"<"):
        return ParsedList(ListFormat.MAL_XML, list(parse_mal_xml(stream)))
    if first.startswith(b"{"):
        fmt, doc = _load_json(read_all(stream))
        entries: Iterable[ImportedEntry] = (
            parse_native(doc) if fmt is ListFormat.NATIVE_JSON else parse_anilist(doc)
        )
        return ParsedList(fmt, list(entries))
    raise ListFileError(_UNKNOWN)


def detect_format(data: bytes) -> ListFormat:
    """The format of a list file, from its content alone."""
    stream = open_stream(data)
    first = head(stream).removeprefix(_BOM).lstrip()
    if first.startswith(b"<"):
        return ListFormat.MAL_XML
    if first.startswith(b"{"):
        return _load_json(read_all(stream))[0]
    raise ListFileError(_UNKNOWN)


def _load_json(raw: bytes) -> tuple[ListFormat, Mapping[str, Any]]:
    try:
        doc = orjson.loads(raw.removeprefix(_BOM))
    except orjson.JSONDecodeError as exc:
        raise ListFileError(f"the JSON is malformed or truncated: {exc}") from None
    if isinstance(doc, dict):
        if is_native(doc):
            return ListFormat.NATIVE_JSON, doc
        if collection_of(doc) is not None:
            return ListFormat.ANILIST_JSON, doc
    raise ListFileError(_UNKNOWN)
