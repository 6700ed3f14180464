"""Reading-list files: MAL XML, AniList MediaListCollection JSON and our own JSON.

Pure code over bytes: detect the format, parse it safely into `ImportedEntry`
records, write entries back out, and plan how entries match catalog series.
"""

from mangahub.lists.errors import (
    AnimeListRefused,
    ListFileError,
    ListTooLarge,
    ListValueError,
)
from mangahub.lists.matching import CatalogKey, MatchIndex, match_entry
from mangahub.lists.parse import ParsedList, detect_format, parse_list
from mangahub.lists.records import ImportedEntry, ListFormat
from mangahub.lists.writers import write_mal_xml, write_native_json

__all__ = [
    "AnimeListRefused",
    "CatalogKey",
    "ImportedEntry",
    "ListFileError",
    "ListFormat",
    "ListTooLarge",
    "ListValueError",
    "MatchIndex",
    "ParsedList",
    "detect_format",
    "match_entry",
    "parse_list",
    "write_mal_xml",
    "write_native_json",
]
