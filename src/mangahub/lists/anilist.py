"""AniList MediaListCollection JSON (the GraphQL response, or its `data` part).

Completed lists may be split by format ("Completed Manga", "Completed One Shot");
custom lists repeat entries, so each media id is read once. Scores arrive in the
user's scoreFormat and are brought to 1-10."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from mangahub.domain.enums import MangaFormat, ReadingStatus
from mangahub.lists import values
from mangahub.lists.errors import AnimeListRefused, ListFileError, ListTooLarge, ListValueError
from mangahub.lists.records import ImportedEntry, SeriesRef
from mangahub.lists.source import MAX_ENTRIES

_STATUSES = {
    "CURRENT": ReadingStatus.READING,
    "REPEATING": ReadingStatus.READING,
    "COMPLETED": ReadingStatus.COMPLETED,
    "PAUSED": ReadingStatus.ON_HOLD,
    "DROPPED": ReadingStatus.DROPPED,
    "PLANNING": ReadingStatus.PLAN_TO_READ,
}
_SCALES = {"POINT_100": 100.0, "POINT_10_DECIMAL": 10.0, "POINT_10": 10.0, "POINT_5": 5.0}
_POINT_3 = {1: 3, 2: 6, 3: 9}  # AniList's smileys: sad, neutral, happy
_ANIME_FORMATS = {"TV", "TV_SHORT", "MOVIE", "SPECIAL", "OVA", "ONA", "MUSIC"}
_ANIME_LISTS = {"watching", "rewatching"}
_FORMATS = {
    "MANGA": MangaFormat.MANGA,
    "NOVEL": MangaFormat.NOVEL,
    "ONE_SHOT": MangaFormat.ONE_SHOT,
}
_COUNTRY_FORMATS = {"KR": MangaFormat.MANHWA, "CN": MangaFormat.MANHUA, "TW": MangaFormat.MANHUA}
_SPLIT_FORMATS = {"manga": MangaFormat.MANGA, "oneshot": MangaFormat.ONE_SHOT}


def collection_of(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The MediaListCollection inside a response, or None when this is not one."""
    data = doc.get("data", doc)
    if not isinstance(data, Mapping):
        return None
    collection = data.get("MediaListCollection")
    return collection if isinstance(collection, Mapping) else None


def parse_anilist(doc: Mapping[str, Any]) -> Iterator[ImportedEntry]:
    collection = collection_of(doc)
    if collection is None or not isinstance(collection.get("lists"), list):
        raise ListFileError("not an AniList MediaListCollection: no data.MediaListCollection.lists")
    scale = _scale(doc, collection["lists"])
    seen: set[object] = set()
    for lst in collection["lists"]:
        if not isinstance(lst, Mapping) or not isinstance(lst.get("entries"), list):
            raise ListFileError("an AniList list has no entries array")
        name = str(lst.get("name") or "")
        if name.strip().lower() in _ANIME_LISTS:
            raise AnimeListRefused()
        split_format = _split_format(name) if lst.get("isSplitCompletedList") else None
        for raw in lst["entries"]:
            if not isinstance(raw, Mapping):
                raise ListFileError("an AniList entry is not an object")
            key = raw.get("mediaId") or id(raw)
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > MAX_ENTRIES:
                raise ListTooLarge(f"the list has more than {MAX_ENTRIES} entries")
            yield _entry(raw, scale, split_format)


def _scale(doc: Mapping[str, Any], lists: list[Any]) -> float | None:
    """The score scale; None means AniList's 3-point smileys."""
    data = doc.get("data", doc)
    user = data.get("User") if isinstance(data, Mapping) else None
    options = user.get("mediaListOptions") if isinstance(user, Mapping) else None
    fmt = options.get("scoreFormat") if isinstance(options, Mapping) else None
    if fmt == "POINT_3":
        return None
    if isinstance(fmt, str) and fmt in _SCALES:
        return _SCALES[fmt]
    # No scoreFormat in the file: a score over 10 can only be the 100-point scale.
    scores = [
        e.get("score")
        for lst in lists
        if isinstance(lst, Mapping)
        for e in (lst.get("entries") or [])
        if isinstance(e, Mapping)
    ]
    high = any(isinstance(s, int | float) and not isinstance(s, bool) and s > 10 for s in scores)
    return 100.0 if high else 10.0


def _split_format(name: str) -> MangaFormat | None:
    key = "".join(ch for ch in name.lower().removeprefix("completed") if ch.isalnum())
    if "novel" in key:
        return MangaFormat.NOVEL
    return _SPLIT_FORMATS.get(key)


def _entry(raw: Mapping[str, Any], scale: float | None, split: MangaFormat | None) -> ImportedEntry:
    media = raw.get("media") if isinstance(raw.get("media"), Mapping) else {}
    assert isinstance(media, Mapping)
    if media.get("type") == "ANIME" or media.get("format") in _ANIME_FORMATS:
        raise AnimeListRefused()
    titles = media.get("title") if isinstance(media.get("title"), Mapping) else {}
    assert isinstance(titles, Mapping)
    names = [
        t
        for key in ("romaji", "english", "native", "userPreferred")
        if (t := values.clean_text(_str(titles.get(key)), limit=values.MAX_TITLE))
    ]
    names = list(dict.fromkeys(names))
    anilist_id = _id(raw.get("mediaId") or media.get("id"), None, "mediaId")
    title = names[0] if names else (f"AniList #{anilist_id}" if anilist_id else None)
    if title is None:
        raise ListValueError("an entry has neither an id nor a title", field="media", value="")
    status_raw = raw.get("status")
    status = _STATUSES.get(status_raw) if isinstance(status_raw, str) else None
    if status is None:
        raise ListValueError("unknown status", title=title, field="status", value=status_raw)
    return ImportedEntry(
        series=SeriesRef(
            title=title,
            alt_titles=tuple(names[1:]),
            mal_id=_id(media.get("idMal"), title, "idMal"),
            anilist_id=anilist_id,
            total_chapters=values.optional_count(
                media.get("chapters"), title=title, field="chapters"
            ),
            volumes=values.optional_count(media.get("volumes"), title=title, field="volumes"),
            format=_format(media, split),
        ),
        status=status,
        chapter=values.chapter(raw.get("progress"), title=title, field="progress"),
        volume=values.optional_count(
            raw.get("progressVolumes"), title=title, field="progressVolumes"
        ),
        score=_score(raw.get("score"), scale, title),
        started_on=_fuzzy(raw.get("startedAt"), title, "startedAt"),
        finished_on=_fuzzy(raw.get("completedAt"), title, "completedAt"),
        rereads=values.count(raw.get("repeat"), title=title, field="repeat"),
        rereading=status_raw == "REPEATING",
        notes=values.clean_text(_str(raw.get("notes")), limit=values.MAX_NOTES),
        added_at=values.epoch(raw.get("createdAt"), title=title, field="createdAt"),
        updated_at=values.epoch(raw.get("updatedAt"), title=title, field="updatedAt"),
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _id(value: object, title: str | None, field: str) -> int | None:
    if value is None:
        return None
    return values.source_id(value, title=title, field=field)


def _format(media: Mapping[str, Any], split: MangaFormat | None) -> MangaFormat | None:
    fmt = _FORMATS.get(media.get("format") or "")
    if fmt is MangaFormat.MANGA:
        return _COUNTRY_FORMATS.get(media.get("countryOfOrigin") or "", fmt)
    return fmt or split


def _score(raw: object, scale: float | None, title: str) -> int | None:
    value = values.number(raw, title=title, field="score")
    if scale is None:
        if value not in (0, 1, 2, 3):
            raise ListValueError("score must be 0-3", title=title, field="score", value=raw)
        return _POINT_3.get(int(value))
    return values.score_1_10(value, scale=scale, title=title)


def _fuzzy(raw: object, title: str, field: str) -> date | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ListValueError("not a date", title=title, field=field, value=raw)
    return values.fuzzy_date(
        raw.get("year"), raw.get("month"), raw.get("day"), title=title, field=field
    )
