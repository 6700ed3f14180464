"""Log output: plain text for a terminal, or one JSON object per line for collectors.

``log_format = "json"`` gives ``{"time", "level", "logger", "message", "request_id",
...extra fields}`` per line. The request id lives in a context variable: set by the
HTTP middleware for each request, it reaches every log line written while serving it,
whatever module writes the line.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import traceback
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]

request_id: ContextVar[str | None] = ContextVar("mangahub_request_id", default=None)

# An incoming X-Request-ID is kept only if it is short and plain (it is echoed in a
# header and written to logs); anything else is replaced by a fresh id.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

# Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _stamp_request_id(
    factory: Callable[..., logging.LogRecord],
) -> Callable[..., logging.LogRecord]:
    """Wrap the record factory so each record keeps the request id current when it was
    made (handlers that format later, off the request's context, still see it)."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return record

    make.mangahub_stamps_request_id = True  # type: ignore[attr-defined]
    return make


if not getattr(logging.getLogRecordFactory(), "mangahub_stamps_request_id", False):
    logging.setLogRecordFactory(_stamp_request_id(logging.getLogRecordFactory()))


def accept_request_id(incoming: str | None) -> str:
    """The caller's id when well-formed, else a new one."""
    if incoming is not None and _VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    # 32 hex digits like a UUID, without a urandom call per request: this process's
    # random half and a counter.
    return f"{_id_prefix}{next(_id_counter) & _ID_MASK:016x}"


_ID_MASK = 2**64 - 1
_id_prefix = uuid.uuid4().hex[:16]
_id_counter = itertools.count()


def _new_id_prefix() -> None:
    global _id_prefix
    _id_prefix = uuid.uuid4().hex[:16]  # a forked child must not repeat its parent's ids


os.register_at_fork(after_in_child=_new_id_prefix)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """The classic line, with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request_id={rid}]" if rid else line


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def apply_format(log_format: LogFormat, logger: logging.Logger | None = None) -> None:
    """Give the handlers the process set up (``mangahub serve`` logs to stderr) the
    configured format. Test-framework capture handlers are left alone."""
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        if type(handler) is logging.StreamHandler:
            handler.setFormatter(formatter(log_format))
