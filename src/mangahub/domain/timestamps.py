"""Timestamps as the public schemas write them in JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with a ``Z`` (now, by default): what pydantic makes of an aware
    datetime in JSON mode (a test holds the two equal). orjson writes it in a fifth of
    the time ``isoformat()`` takes, which counts once per written entry."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:-1].decode()
