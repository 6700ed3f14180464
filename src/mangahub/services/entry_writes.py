"""The reader's list's write path: the rules of SPEC "Reading entry" (:func:`apply`),
the group commit's transaction (:func:`store`) and the written entries' JSON
(:func:`announced`).

Plain functions, no coroutine: on SQLite the transaction runs whole on the writer's
thread, and ``make native`` compiles this module (every write of every door runs it,
thousands a second under the TCP door's load). :mod:`mangahub.services.reading_list`
is the service around it.
"""

from __future__ import annotations

import builtins
import functools
import operator
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple, cast

import orjson
from sqlalchemy import BigInteger, Dialect, Table, bindparam, delete, select, tuple_, update
from sqlalchemy.engine import Connection

from mangahub.bus import Event
from mangahub.domain.chapters import beyond_count
from mangahub.domain.enums import MangaStatus, ReadingStatus
from mangahub.domain.errors import Conflict, MangaHubError, NotFound, ValidationFailed
from mangahub.domain.schemas import MAX_NOTES_LENGTH, EntryPublic
from mangahub.domain.text import bad_characters
from mangahub.domain.timestamps import utc_timestamp
from mangahub.services._common import (
    manga_not_found,
    recompute_averages,
    upsert_rows,
    valid_id,
)
from mangahub.storage.models import Manga, ReadingEntry, User
from mangahub.storage.types import utcnow

MAX_CHAPTER = 100_000
MAX_VOLUME = 100_000
MAX_REREADS = 10_000
MAX_DEVICE_LENGTH = 100
MIN_SCORE, MAX_SCORE = 1, 10

# What a write may set, and the defaults of a new entry.
_DEFAULTS: dict[str, Any] = {
    "chapter": 0.0,
    "volume": 0,
    "score": None,
    "started_on": None,
    "finished_on": None,
    "rereads": 0,
    "rereading": False,
    "notes": "",
}
FIELDS = frozenset({"status", *_DEFAULTS})
# Status by value (a member is its own value): a dict lookup, cheaper than the enum call.
_STATUS: dict[str, ReadingStatus] = {status.value: status for status in ReadingStatus}
# A status (member or value: a StrEnum member hashes and compares as its value) as JSON.
_STATUS_TEXT: dict[str, str] = {status.value: status.value for status in ReadingStatus}
_NULLABLE = frozenset({"score", "started_on", "finished_on"})
_STORED = ("status", *_DEFAULTS, "added_at", "updated_at", "device", "version")
_ENTRIES = cast(Table, ReadingEntry.__table__)
_USERS = cast(Table, User.__table__)

# The group commit's statements, built once (SQLAlchemy caches their compiled form;
# building them anew costs more than running them for a batch of one).
_FACTS = select(Manga.id, Manga.total_chapters, Manga.status).where(
    Manga.id.in_(bindparam("ids", expanding=True))
)
_SQLITE_FACTS = (
    f"SELECT json_group_array(json_array(id, total_chapters, status)) FROM {Manga.__tablename__} "
    "WHERE id IN (SELECT value FROM json_each(?))"
)
# What a write reads of the current entry: the rules' fields and when it was added
# (its last update time, device and version are replaced anyway).
_BEFORE = ("status", *_DEFAULTS, "added_at")
_CURRENT = select(_ENTRIES.c.user_id, _ENTRIES.c.manga_id, *(_ENTRIES.c[n] for n in _BEFORE)).where(
    tuple_(_ENTRIES.c.user_id, _ENTRIES.c.manga_id).in_(bindparam("keys", expanding=True))
)
_LOCK_USERS = (
    select(_USERS.c.id)
    .where(_USERS.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_USERS.c.id)
    .with_for_update()
)
_RESERVE_VERSIONS = (
    update(_USERS)
    .values(progress_seq=_USERS.c.progress_seq + bindparam("count", type_=BigInteger))
    .where(_USERS.c.id.in_(bindparam("ids", expanding=True)))
    .returning(_USERS.c.id, _USERS.c.progress_seq)
)
_UPSERTS = {
    dialect: upsert_rows(
        dialect,
        _ENTRIES,
        keys=("user_id", "manga_id"),
        update=[c for c in _STORED if c != "added_at"],
    )
    for dialect in ("sqlite", "postgresql")
}


class WriteMode(StrEnum):
    UPSERT = "upsert"  # progress, score: creates the entry when missing
    ADD = "add"  # Conflict when the entry exists
    UPDATE = "update"  # NotFound when the entry is missing


# Members as module globals for the per-write code: a global is read in a quarter of
# the time an Enum class attribute takes.
_UPSERT, _ADD, _UPDATE = WriteMode.UPSERT, WriteMode.ADD, WriteMode.UPDATE
_READING = ReadingStatus.READING
_COMPLETED = ReadingStatus.COMPLETED
_PLAN_TO_READ = ReadingStatus.PLAN_TO_READ


class EntryWrite(NamedTuple):
    """Any write of one entry: the fields to change, and what to do when it is
    missing or present (``mode``). A tuple: the group commit makes thousands."""

    user_id: uuid.UUID
    manga_id: int
    changes: Mapping[str, Any] = MappingProxyType({})
    mode: WriteMode = WriteMode.UPSERT
    device: str | None = None
    origin: str | None = None


class StoredEntry(dict[str, Any]):
    """A committed write as JSON values (``EntryPublic`` in JSON mode), as its event
    carries it, and ``encoded``, its compact JSON, made with it once however many lines
    carry it (a TCP ack and every push). Shared: never edited once built. ``entry`` is
    the same entry as a schema, built only when asked (the TCP door never asks).

    No ``__init__`` of its own: a dict subclass built by the C one costs half as much,
    and one is built per written entry."""

    __slots__ = ("encoded",)
    encoded: bytes

    @property
    def entry(self) -> EntryPublic:
        return EntryPublic.model_validate(self)


StoredOutcome = StoredEntry | MangaHubError


def progress_write(
    user_id: uuid.UUID,
    manga_id: int,
    chapter: float,
    *,
    volume: int | None = None,
    status: ReadingStatus | None = None,
    device: str | None = None,
    origin: str | None = None,
) -> EntryWrite:
    """The write of a reader's position (TCP ``progress_update``, ``set_progress``):
    creates the entry when missing."""
    changes: dict[str, Any] = {"chapter": chapter}
    if volume is not None:
        changes["volume"] = volume
    if status is not None:
        changes["status"] = status
    return EntryWrite(user_id, manga_id, changes, _UPSERT, device, origin)


# --- the rules --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeriesFacts:
    """What the rules need to know about the series."""

    total_chapters: int | None
    finished: bool


def apply(
    current: Mapping[str, Any] | None,
    changes: Mapping[str, Any],
    series: SeriesFacts,
    today: date,
) -> dict[str, Any]:
    """The entry after ``changes`` (SPEC "Reading entry" rules); ``current`` is None
    for a series not listed yet. Returns every field of :data:`FIELDS`."""
    entry: dict[str, Any] = dict(_DEFAULTS) if current is None else dict(current)
    old_status = None if current is None else _STATUS[current["status"]]
    was_rereading = bool(entry["rereading"])
    old_chapter = float(entry["chapter"])
    for name, value in changes.items():
        if name != "status":
            entry[name] = value
    chapter_written = "chapter" in changes
    asked = changes.get("status")
    status: ReadingStatus
    if asked is not None:
        status = _STATUS[asked]
    elif old_status is None:
        # A chapter write lists the series as reading; anything else plans to read it.
        status = _READING if chapter_written else _PLAN_TO_READ
    elif old_status is _PLAN_TO_READ and chapter_written and entry["chapter"] > 0:
        status = _READING
    else:
        status = old_status
    total = series.total_chapters
    reaches_end = (
        chapter_written
        and series.finished
        and total is not None
        and total > 0
        and entry["chapter"] >= total
        and (old_chapter < total or old_status is not _COMPLETED)
    )
    if reaches_end and asked in (None, _READING):
        status = _COMPLETED
    completing = status is _COMPLETED and (
        old_status is not _COMPLETED or (was_rereading and (reaches_end or asked))
    )
    if completing:
        if total is not None and entry["chapter"] < total and not chapter_written:
            # Completing moves the chapter to the end, never back.
            entry["chapter"] = float(total)
        if "finished_on" not in changes and (entry["finished_on"] is None or was_rereading):
            entry["finished_on"] = today
        if was_rereading and old_status is _COMPLETED:
            if "rereads" not in changes:
                entry["rereads"] = int(entry["rereads"]) + 1
            if "rereading" not in changes:
                entry["rereading"] = False
    if status is _READING and entry["started_on"] is None and "started_on" not in changes:
        entry["started_on"] = today
    entry["status"] = status
    return entry


def check_changes(changes: Mapping[str, Any]) -> list[dict[str, str]]:
    """Field rules that need no database, for every door (HTTP and TCP schemas check
    them too; gRPC, the CLI's jobs and imports may not)."""
    problems: list[dict[str, str]] = []
    for name, value in changes.items():
        rule = _FIELD_RULES.get(name)
        if rule is None:
            problem: str | None = "not a field of a reading entry"
        elif value is None:
            problem = None if name in _NULLABLE else "must not be null"
        else:
            problem = rule(value)
        if problem is not None:
            problems.append({"field": name, "message": problem})
    return problems


def _status_rule(value: Any) -> str | None:
    return None if isinstance(value, str) and value in _STATUS else "unknown reading status"


_NUMBER = (int, float)  # a tuple: ``int | float`` would build a union on every call


def _chapter_rule(value: Any) -> str | None:
    # The range also refuses NaN and the infinities (every comparison with NaN is false).
    if isinstance(value, _NUMBER) and not isinstance(value, bool) and 0 <= value <= MAX_CHAPTER:
        return None
    return f"must be a number in 0..{MAX_CHAPTER}"


def _integer_rule(low: int, high: int) -> Callable[[Any], str | None]:
    def rule(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return None
        return f"must be an integer in {low}..{high}"

    return rule


def _date_rule(value: Any) -> str | None:
    return None if isinstance(value, date) else "must be a date"


def _flag_rule(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _notes_rule(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_NOTES_LENGTH:
        return f"text of at most {MAX_NOTES_LENGTH} characters"
    return bad_characters(value, multiline=True)


# One rule per field a write may set (a value of None is judged before the rule).
_FIELD_RULES: dict[str, Callable[[Any], str | None]] = {
    "status": _status_rule,
    "chapter": _chapter_rule,
    "volume": _integer_rule(0, MAX_VOLUME),
    "rereads": _integer_rule(0, MAX_REREADS),
    "score": _integer_rule(MIN_SCORE, MAX_SCORE),
    "started_on": _date_rule,
    "finished_on": _date_rule,
    "rereading": _flag_rule,
    "notes": _notes_rule,
}
assert _FIELD_RULES.keys() == FIELDS, "every field has its rule"


# --- the write path ---------------------------------------------------------------------

# An entry's key inside one batch: its user's id as an int (a UUID hashes in Python,
# on every dict and set operation; its int hashes in C) and its manga id.
_Key = tuple[int, int]


def store(conn: Connection, writes: Sequence[EntryWrite]) -> Stored:
    """The group commit's transaction, as a plain function (on SQLite it runs whole on
    the writer's thread): check, version, apply and write every write."""
    dialect = conn.dialect.name
    outcomes: list[StoredOutcome | None] = [_check_write(w) for w in writes]
    series = _load_facts(
        conn, {w.manga_id for w, o in zip(writes, outcomes, strict=True) if o is None}
    )
    for i, write in enumerate(writes):
        if outcomes[i] is None:
            outcomes[i] = _check_against_series(write, series.get(write.manga_id))
    users: dict[int, Any] = {w.user_id.int: w.user_id for w in writes}
    if dialect == "sqlite":
        # Each user's id as the column stores it, made once for every statement that
        # the batch runs on the driver.
        to_column = _conversions(conn.dialect).user_id
        users = {user: to_column(user_id) for user, user_id in users.items()}
    # Only writes that passed so far take a version (and lock their user's row).
    versions = _take_versions(conn, writes, outcomes, users)
    accepted = [w for w, o in zip(writes, outcomes, strict=True) if o is None]
    scored = sorted({w.manga_id for w in accepted if "score" in w.changes})
    _lock_manga(conn, scored)
    current = _load_entries(conn, {(w.user_id.int, w.manga_id) for w in accepted}, users)
    moment = _Moment.of(utcnow())
    now, today = moment.now, moment.today  # the very objects _entry_json recognises
    stored: dict[_Key, dict[str, Any]] = {}
    done: dict[int, dict[str, Any]] = {}
    written: set[int] = set()
    for i, write in enumerate(writes):
        if outcomes[i] is not None:
            continue
        key = (write.user_id.int, write.manga_id)
        before = current.get(key)
        problem = _check_presence(write, before is not None)
        if problem is not None:
            outcomes[i] = problem
            continue
        entry = apply(before, write.changes, series[write.manga_id], today)
        entry["chapter"] = _normalize(float(entry["chapter"]))
        entry["added_at"] = now if before is None else before["added_at"]
        entry["updated_at"] = now
        entry["device"] = write.device
        entry["version"] = versions[i]
        # Never edited once here: a later write of the same entry in this batch
        # applies on a copy (``apply``), so ``done`` keeps this write's own values.
        current[key] = stored[key] = done[i] = entry
        written.add(write.manga_id)
    if stored:
        # One statement run for every row (compiled once, whatever the batch size).
        if dialect == "sqlite":
            _sqlite_upsert(conn, stored, users)
        else:
            rows = [_row(users[key[0]], key[1], entry) for key, entry in stored.items()]
            conn.execute(_UPSERTS[dialect], rows)
    moved: dict[int, float | None] = {}
    if scored:  # the series whose stored scores changed have a new average
        rescored = {writes[i].manga_id for i in done if "score" in writes[i].changes}
        averages = recompute_averages(conn, scored)
        moved = {
            manga_id: average for manga_id, average in averages.items() if manga_id in rescored
        }
    return Stored(outcomes, done, written, moment, moved)


def remove(conn: Connection, user_id: uuid.UUID, manga_id: int) -> bool:
    """Delete the entry (False when it is not listed) and recompute its series' average."""
    _lock_manga(conn, [manga_id])
    removed = conn.scalar(
        delete(_ENTRIES)
        .where(_ENTRIES.c.user_id == user_id, _ENTRIES.c.manga_id == manga_id)
        .returning(_ENTRIES.c.manga_id)
    )
    if removed is None:
        return False
    recompute_averages(conn, [manga_id])
    return True


class _Moment(NamedTuple):
    """A batch's time of writing, and its JSON forms, made once for all its entries."""

    now: datetime
    stamp: str  # ``now`` as JSON
    today: date
    today_text: str

    @classmethod
    def of(cls, now: datetime) -> _Moment:
        today = now.date()
        return cls(now, utc_timestamp(now), today, today.isoformat())


class Stored(NamedTuple):
    """What a batch's transaction stored: ``done`` (by position) the entries written,
    ``outcomes`` the errors of the others (None where written)."""

    outcomes: builtins.list[StoredOutcome | None]
    done: dict[int, dict[str, Any]]
    manga_ids: set[int]  # the series of the entries written
    moment: _Moment
    averages: dict[int, float | None]  # the new average score of the series rescored


def _check_write(write: EntryWrite) -> MangaHubError | None:
    if not valid_id(write.manga_id):
        return manga_not_found(write.manga_id)
    problems = check_changes(write.changes)
    if write.mode is _UPDATE and not write.changes:
        problems.append({"field": "body", "message": "name at least one field to change"})
    if write.device is not None and len(write.device) > MAX_DEVICE_LENGTH:
        problems.append({"field": "device", "message": f"at most {MAX_DEVICE_LENGTH} characters"})
    elif write.device is not None and (problem := bad_characters(write.device)) is not None:
        problems.append({"field": "device", "message": problem})
    return ValidationFailed("invalid reading entry", details=problems) if problems else None


def _check_presence(write: EntryWrite, present: bool) -> MangaHubError | None:
    if write.mode is _ADD and present:
        return Conflict("manga is already in your library", details={"manga_id": write.manga_id})
    if write.mode is _UPDATE and not present:
        return not_listed(write.manga_id)
    return None


def _check_against_series(write: EntryWrite, facts: SeriesFacts | None) -> MangaHubError | None:
    """NotFound for an unknown series; ValidationFailed for a chapter beyond its known
    chapter count."""
    if facts is None:
        return manga_not_found(write.manga_id)
    chapter = write.changes.get("chapter")
    total = facts.total_chapters
    if chapter is not None and total is not None and beyond_count(chapter, total):
        return ValidationFailed(
            f"chapter {chapter:g} is beyond this manga's {total} chapters",
            details=[{"field": "chapter", "message": f"below {total + 1}"}],
        )
    return None


def _take_versions(
    conn: Connection,
    writes: Sequence[EntryWrite],
    outcomes: list[StoredOutcome | None],
    users: Mapping[int, Any],
) -> dict[int, int]:
    """Reserve the next per-user version for every accepted write, in arrival order:
    one statement for all the users with the same number of writes in the batch
    (usually one statement). On PostgreSQL the users' rows are locked first, in id
    order, so two processes batching the same users cannot deadlock, and before their
    entries are read. ``users``: each user's id, as the column stores it on SQLite."""
    per_user = Counter(w.user_id.int for w, o in zip(writes, outcomes, strict=True) if o is None)
    last: dict[int, int] = {}  # user (as an int) -> the version of its last write
    sqlite = conn.dialect.name == "sqlite"
    if per_user and not sqlite:
        conn.execute(_LOCK_USERS, {"ids": [users[u] for u in per_user]})
    by_count: dict[int, list[int]] = {}
    for user, count in per_user.items():
        by_count.setdefault(count, []).append(user)
    for count, group in sorted(by_count.items()):
        if sqlite:
            last.update(_sqlite_reserve(conn, {users[user]: user for user in group}, count))
        else:
            params = {"ids": [users[user] for user in group], "count": count}
            rows = conn.execute(_RESERVE_VERSIONS, params)
            last.update((row[0].int, row[1]) for row in rows.all())
    versions: dict[int, int] = {}
    # Walk backwards so each user's earliest write gets the smallest reserved version.
    for i in reversed(range(len(writes))):
        if outcomes[i] is not None:
            continue
        user = writes[i].user_id.int
        seq = last.get(user)
        if seq is None:
            outcomes[i] = NotFound("user not found")
            continue
        versions[i] = seq
        last[user] = seq - 1
    return versions


_SQLITE_RESERVE = (
    f"UPDATE {_USERS.name} SET progress_seq = progress_seq + ? "
    "WHERE id IN (SELECT value FROM json_each(?))"
)
_SQLITE_RESERVED = (
    f"SELECT json_group_array(json_array(id, progress_seq)) FROM {_USERS.name} "
    "WHERE id IN (SELECT value FROM json_each(?))"
)


def _sqlite_reserve(conn: Connection, users: Mapping[Any, int], count: int) -> dict[int, int]:
    """``_RESERVE_VERSIONS`` on the driver, as an UPDATE and then the new counters as
    one JSON array (RETURNING would be one driver step per user). ``users`` maps each
    id as the column stores it to the key the counter comes back under."""
    ids = _json_text(list(users))
    conn.exec_driver_sql(_SQLITE_RESERVE, (count, ids))
    return {users[user]: seq for user, seq in _sqlite_json(conn, _SQLITE_RESERVED, ids)}


def _sqlite_json(conn: Connection, sql: str, *params: Any) -> builtins.list[Any]:
    """The rows of an SQLite statement that selects them as one JSON array: one
    step of the driver (one release of the GIL) instead of one per row, and no
    Python object per column until the rows are parsed at once."""
    return cast(builtins.list[Any], orjson.loads(conn.exec_driver_sql(sql, params).scalar_one()))


def _json_text(value: Any) -> str:
    # Text, not bytes: SQLite reads a BLOB argument of a JSON function as JSONB.
    return orjson.dumps(value).decode()


def _lock_manga(conn: Connection, manga_ids: Sequence[int]) -> None:
    """Lock the series whose average score the transaction rewrites (PostgreSQL; SQLite
    has one writer anyway), in id order, so two scorers cannot miss each other."""
    if manga_ids:
        conn.execute(
            select(Manga.id).where(Manga.id.in_(manga_ids)).order_by(Manga.id).with_for_update()
        )


def _load_facts(conn: Connection, manga_ids: set[int]) -> dict[int, SeriesFacts]:
    """What the rules need of these series, read in the write's transaction."""
    if not manga_ids:
        return {}
    rows: Iterable[Sequence[Any]]
    if conn.dialect.name == "sqlite":
        rows = _sqlite_json(conn, _SQLITE_FACTS, _json_text(list(manga_ids)))
    else:
        rows = conn.execute(_FACTS, {"ids": list(manga_ids)})
    completed = MangaStatus.COMPLETED.value
    return {manga_id: SeriesFacts(total, status == completed) for manga_id, total, status in rows}


def _load_entries(
    conn: Connection, keys: set[_Key], users: Mapping[int, Any]
) -> dict[_Key, dict[str, Any]]:
    if not keys:
        return {}
    if conn.dialect.name == "sqlite":
        return _sqlite_entries(conn, list(keys), users)
    params = [(users[user], manga_id) for user, manga_id in keys]
    rows = conn.execute(_CURRENT, {"keys": params}).all()
    return {(row[0].int, row[1]): dict(zip(_BEFORE, row[2:], strict=True)) for row in rows}


# SQLite plans ``(user_id, manga_id) IN ((?, ?), …)`` as a scan of the whole table, so
# there the keys are joined from a JSON array, which probes the primary key per key.
# Each row comes back with its key's position, so its user id need not be parsed.
_SQLITE_LOOKUP = (
    "SELECT json_group_array(json_array(k.key, "
    + ", ".join(f"e.{name}" for name in _BEFORE)
    + f")) FROM json_each(?) AS k JOIN {_ENTRIES.name} AS e "
    "ON e.user_id = k.value ->> 0 AND e.manga_id = k.value ->> 1"
)


class _Conversions(NamedTuple):
    """The column types' own conversions, for statements run on the driver directly."""

    user_id: Callable[[Any], Any]
    results: tuple[tuple[int, Callable[[Any], Any]], ...]
    """(position in _BEFORE, conversion) of the columns that have one."""


# Read and written back on SQLite in their stored text, which is ISO 8601 already: a
# date as JSON has it, a timestamp (UTC) but for its "T" and "Z" (_json_timestamp).
_STORED_TEXT = frozenset({"started_on", "finished_on", "added_at"})


@functools.cache
def _conversions(dialect: Dialect) -> _Conversions:
    bind = _ENTRIES.c.user_id.type.dialect_impl(dialect).bind_processor(dialect)
    results = tuple(
        (at, convert)
        for at, name in enumerate(_BEFORE)
        if name not in _STORED_TEXT
        and (convert := _ENTRIES.c[name].type.dialect_impl(dialect).result_processor(dialect, None))
    )
    return _Conversions(bind or (lambda value: value), results)


def _sqlite_entries(
    conn: Connection, keys: list[_Key], users: Mapping[int, str]
) -> dict[_Key, dict[str, Any]]:
    """The current entries of ``keys``; ``users`` holds their ids as stored."""
    convert = _conversions(conn.dialect)
    params = _json_text([(users[user], manga_id) for user, manga_id in keys])
    found: dict[_Key, dict[str, Any]] = {}
    for row in _sqlite_json(conn, _SQLITE_LOOKUP, params):
        values = row[1:]
        for at, f in convert.results:
            if values[at] is not None:
                values[at] = f(values[at])
        found[keys[row[0]]] = dict(zip(_BEFORE, values, strict=True))
    return found


_UPSERT_COLUMNS = ("user_id", "manga_id", *_STORED)


class _DriverStatement(NamedTuple):
    """A statement compiled once for the driver, taking rows built in
    ``_UPSERT_COLUMNS`` order: the columns whose type converts a value (by position,
    with the conversion), and the parameters' order when it is not that one."""

    sql: str
    converted: tuple[tuple[int, Callable[[Any], Any]], ...]
    order: tuple[int, ...] | None


@functools.cache
def _sqlite_upsert_statement(dialect: Dialect) -> _DriverStatement:
    compiled = _UPSERTS["sqlite"].compile(dialect=dialect, column_keys=list(_UPSERT_COLUMNS))
    order = compiled.positiontup or []
    if sorted(order) != sorted(_UPSERT_COLUMNS):  # the plain INSERT form, or a surprise
        raise RuntimeError(f"unexpected upsert parameters {order}")
    column = _ENTRIES.c
    converted = tuple(
        (at, convert)
        for at, name in enumerate(_UPSERT_COLUMNS)
        if (convert := column[name].type.dialect_impl(dialect).bind_processor(dialect))
    )
    positions = tuple(_UPSERT_COLUMNS.index(name) for name in order)
    in_order = positions == tuple(range(len(_UPSERT_COLUMNS)))
    return _DriverStatement(compiled.string, converted, None if in_order else positions)


_STORED_VALUES = operator.itemgetter(*_STORED)


def _sqlite_upsert(
    conn: Connection, stored: Mapping[_Key, Mapping[str, Any]], users: Mapping[int, str]
) -> None:
    """The batch's rows in a few multi-row statements on the driver: one SQLite step
    (one release of the GIL, which the event loop's thread may then hold for a
    while) per statement instead of per row, and none of SQLAlchemy's per-row
    parameter handling, which costs more than SQLite's work for these rows."""
    statement = _sqlite_upsert_statement(conn.dialect)
    # A batch repeats values (its timestamp, today): convert each once, and only in
    # the columns that have a conversion (``users`` are given as stored already).
    conversions: list[tuple[int, Callable[[Any], Any], dict[Any, Any]]] = [
        (at, convert, {}) for at, convert in statement.converted
    ]
    rows = []
    for (user, manga_id), entry in stored.items():
        values = [users[user], manga_id, *_STORED_VALUES(entry)]
        for at, convert, seen in conversions:
            value = values[at]
            if value is not None and type(value) is not str:  # not stored text already
                done = seen.get(value)
                if done is None:
                    done = seen[value] = convert(value)
                values[at] = done
        rows.append(
            tuple(values) if statement.order is None else tuple(values[i] for i in statement.order)
        )
    start = 0
    for size in _row_chunks(len(rows)):
        params = tuple(value for row in rows[start : start + size] for value in row)
        conn.exec_driver_sql(_multirow(statement.sql, size), params)
        start += size


# Rows per upsert statement: 64 x 15 parameters stay under 999, the smallest limit an
# SQLite build may have.
_MAX_ROWS_PER_STATEMENT = 64


def _row_chunks(count: int) -> list[int]:
    """Statement sizes for ``count`` rows: full statements, then powers of two, so
    there are few distinct statements (each prepared once, cached by the driver)."""
    sizes = [_MAX_ROWS_PER_STATEMENT] * (count // _MAX_ROWS_PER_STATEMENT)
    rest = count % _MAX_ROWS_PER_STATEMENT
    size = _MAX_ROWS_PER_STATEMENT
    while rest:
        size //= 2
        if rest >= size:
            sizes.append(size)
            rest -= size
    return sizes


@functools.lru_cache(maxsize=16)
def _multirow(sql: str, rows: int) -> str:
    """``INSERT … VALUES (?, …) …`` with ``rows`` value lists."""
    values = sql[sql.index("VALUES (") + len("VALUES ") :]
    one = values[: values.index(")") + 1]
    return sql.replace(one, ", ".join([one] * rows), 1)


# Series summaries as written entries embed them (as JSON values), by id.
Summaries = dict[int, dict[str, Any]]


# A committed batch's series by id: each summary, and its JSON encoded once for all the
# batch's entries of that series.
WrittenSeries = dict[int, tuple[dict[str, Any], orjson.Fragment]]


def written_series(summaries: Summaries) -> WrittenSeries:
    return {key: (s, orjson.Fragment(orjson.dumps(s))) for key, s in summaries.items()}


def announced(
    writes: Sequence[EntryWrite],
    stored: Stored,
    series: WrittenSeries,
    topics: dict[int, str],
    start: int,
    stop: int,
) -> tuple[builtins.list[StoredOutcome], builtins.list[tuple[str, Event]]]:
    """The outcomes of writes ``start:stop`` of a committed batch and the events that
    push them, in order. ``topics`` keeps each user's topic from slice to slice (a
    UUID's str() costs a microsecond)."""
    outcomes: builtins.list[StoredOutcome] = []
    events: builtins.list[tuple[str, Event]] = []
    moment = stored.moment
    for i in range(start, stop):
        outcome = stored.outcomes[i]
        if outcome is None:
            write = writes[i]
            found = series.get(write.manga_id)
            if found is None:  # deleted since the commit, and the entry with it
                outcomes.append(manga_not_found(write.manga_id))
                continue
            summary, encoded = found
            outcome = entry = _entry_json(write.manga_id, stored.done[i], summary, encoded, moment)
            topic = topics.get(write.user_id.int)
            if topic is None:
                topic = topics[write.user_id.int] = f"progress:{write.user_id}"
            event: Event = {"type": "progress", "data": entry}
            if write.origin is not None:
                event["origin"] = write.origin
            events.append((topic, event))
        outcomes.append(outcome)
    return outcomes, events


def _entry_json(
    manga_id: int,
    entry: Mapping[str, Any],
    manga: dict[str, Any],
    manga_encoded: orjson.Fragment,
    moment: _Moment,
) -> StoredEntry:
    """``EntryPublic(...).model_dump(mode="json")`` of an entry stored at ``moment``,
    without the schema (its values are already of the schema's types; a test holds
    them equal), encoded around its series' JSON (``manga_encoded``)."""
    now, stamp = moment.now, moment.stamp
    added_at = entry["added_at"]
    updated_at = entry["updated_at"]
    data = StoredEntry(
        {
            "manga_id": manga_id,
            "status": _STATUS_TEXT[entry["status"]],
            "chapter": entry["chapter"],
            "volume": entry["volume"],
            "score": entry["score"],
            "started_on": _json_date(entry["started_on"], moment),
            "finished_on": _json_date(entry["finished_on"], moment),
            "rereads": entry["rereads"],
            "rereading": entry["rereading"],
            "notes": entry["notes"],
            "added_at": stamp if added_at is now else _json_timestamp(added_at),
            "updated_at": stamp if updated_at is now else utc_timestamp(updated_at),
            "version": entry["version"],
            "device": entry["device"],
            "manga": manga_encoded,
        }
    )
    data.encoded = orjson.dumps(data)
    data["manga"] = manga  # the summary itself, for whoever reads the entry
    return data


def _json_date(value: date | str | None, moment: _Moment) -> str | None:
    """A date as JSON: as stored text already, or the batch's today (set by the rules),
    or any other."""
    if value is None or isinstance(value, str):
        return value
    if value is moment.today:
        return moment.today_text
    return value.isoformat()


def _json_timestamp(value: datetime | str) -> str:
    """A timestamp as JSON, from a datetime or from SQLite's stored text of one in UTC
    (``2026-01-02 03:04:05.678900``; the fraction omitted when zero, like orjson)."""
    if not isinstance(value, str):
        return utc_timestamp(value)
    if value.endswith(".000000"):
        value = value[:-7]
    return value.replace(" ", "T") + "Z"


def _row(user_id: uuid.UUID, manga_id: int, entry: Mapping[str, Any]) -> dict[str, Any]:
    row = {name: entry[name] for name in _STORED}
    row["status"] = _STATUS[row["status"]].value
    return {"user_id": user_id, "manga_id": manga_id, **row}


def _normalize(chapter: float) -> float:
    # Stored as NUMERIC(10, 2): round here so both backends (SQLite keeps any float)
    # return the same value the caller is acknowledged with. A whole chapter needs no
    # rounding (the usual case; round() goes through a decimal string).
    if chapter.is_integer():
        return chapter + 0.0  # + 0.0 turns -0.0 into 0.0
    return round(chapter, 2) + 0.0


def not_listed(manga_id: int) -> NotFound:
    return NotFound("manga is not in your library", details={"manga_id": manga_id})
