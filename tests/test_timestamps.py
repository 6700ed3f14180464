"""Timestamps in JSON exactly as the public schemas write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter
from sqlalchemy.dialects import sqlite

from mangahub.domain.timestamps import utc_timestamp
from mangahub.services.entry_writes import _json_timestamp
from mangahub.storage.models import ReadingEntry

_SCHEMA = TypeAdapter(datetime)
_MOMENTS = [
    datetime(2026, 12, 5, 21, 37, 45, 193803, tzinfo=UTC),
    datetime(2026, 12, 5, 21, 37, 45, tzinfo=UTC),  # no fraction
    datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC),
    datetime(2026, 6, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))),  # not UTC
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=9))),
]


@pytest.mark.parametrize("moment", _MOMENTS)
def test_the_timestamp_is_the_schemas_json(moment: datetime) -> None:
    expected = _SCHEMA.dump_python(moment.astimezone(UTC), mode="json")
    assert utc_timestamp(moment) == expected
    assert utc_timestamp(moment).endswith("Z")


def test_without_a_moment_it_is_now() -> None:
    before = datetime.now(UTC)
    stamp = datetime.fromisoformat(utc_timestamp())
    assert before <= stamp <= datetime.now(UTC)


@pytest.mark.parametrize("moment", _MOMENTS)
def test_a_timestamp_stored_by_sqlite_is_written_as_the_schemas_json(moment: datetime) -> None:
    """The group commit writes an entry's stored timestamp text back as JSON without
    parsing it: the same text the schema makes of the datetime."""
    column = ReadingEntry.__table__.c.added_at.type
    dialect = sqlite.dialect()
    stored = column.dialect_impl(dialect).bind_processor(dialect)(moment)
    assert isinstance(stored, str)
    assert _json_timestamp(stored) == _SCHEMA.dump_python(moment.astimezone(UTC), mode="json")
