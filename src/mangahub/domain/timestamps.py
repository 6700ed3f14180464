"""Timestamps as the public schemas write them in JSON."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with a ``Z`` (now, by default): what pydantic makes of an aware
    datetime in JSON mode, without a serializer call (a test holds the two equal)."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")
