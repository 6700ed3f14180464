"""The sync daemon's files in the state directory: ``syncd.pid``, ``syncd.json``
(its state, rewritten atomically) and ``syncd.log``."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import orjson

from mangahub.cli.paths import private_dir, state_dir


def pid_file() -> Path:
    return state_dir() / "syncd.pid"


def state_file() -> Path:
    return state_dir() / "syncd.json"


def log_file() -> Path:
    return state_dir() / "syncd.log"


def running_pid() -> int | None:
    """The daemon's pid when one is alive, else None (a stale pid file is removed)."""
    try:
        pid = int(pid_file().read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pid_file().unlink(missing_ok=True)
        return None
    except PermissionError:
        pass  # alive, owned by someone else
    return pid


def claim_pid() -> bool:
    """Write our pid unless another live daemon holds the file."""
    private_dir(state_dir())
    if running_pid() not in (None, os.getpid()):
        return False
    tmp = pid_file().with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, pid_file())
    return True


def release_pid() -> None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        if int(pid_file().read_text().strip()) == os.getpid():
            pid_file().unlink()


def read_state() -> dict[str, Any]:
    try:
        data = orjson.loads(state_file().read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(state: dict[str, Any]) -> None:
    private_dir(state_dir())
    tmp = state_file().with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    os.replace(tmp, state_file())
