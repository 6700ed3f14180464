"""utc_timestamp writes a datetime exactly as the public schemas do in JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter

from mangahub.domain.timestamps import utc_timestamp

_SCHEMA = TypeAdapter(datetime)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 5, 21, 37, 45, 193803, tzinfo=UTC),
        datetime(2026, 12, 5, 21, 37, 45, tzinfo=UTC),  # no fraction
        datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC),
        datetime(2026, 6, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5))),  # not UTC
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=9))),
    ],
)
def test_the_timestamp_is_the_schemas_json(moment: datetime) -> None:
    expected = _SCHEMA.dump_python(moment.astimezone(UTC), mode="json")
    assert utc_timestamp(moment) == expected
    assert utc_timestamp(moment).endswith("Z")


def test_without_a_moment_it_is_now() -> None:
    before = datetime.now(UTC)
    stamp = datetime.fromisoformat(utc_timestamp())
    assert before <= stamp <= datetime.now(UTC)
