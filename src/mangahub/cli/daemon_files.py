"""The sync daemon's files in the state directory: ``syncd.lock`` (held by the live
daemon), ``syncd.pid``, ``syncd.json`` (its state, rewritten atomically) and
``syncd.log``."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

import orjson

from mangahub.cli.paths import private_dir, state_dir

_held: int | None = None
"""The lock file's descriptor while this process is the daemon."""


def lock_file() -> Path:
    return state_dir() / "syncd.lock"


def pid_file() -> Path:
    return state_dir() / "syncd.pid"


def state_file() -> Path:
    return state_dir() / "syncd.json"


def log_file() -> Path:
    return state_dir() / "syncd.log"


def running_pid() -> int | None:
    """The daemon's pid while one holds ``syncd.lock``, else None. The lock, not the
    pid, says who is alive: the kernel drops it with its process, so a pid file left
    by a crash (its pid perhaps reused by another program) never passes for a daemon."""
    if not _lock_held():
        return None
    try:
        return int(pid_file().read_text().strip())
    except (FileNotFoundError, ValueError):
        return None  # a daemon that has not written its pid yet


def _lock_held() -> bool:
    try:
        fd = os.open(lock_file(), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def claim_pid() -> bool:
    """Take the daemon's lock and write our pid; False when another daemon holds it.
    The lock is atomic, so two daemons started at once cannot both win."""
    global _held
    private_dir(state_dir())
    fd = os.open(lock_file(), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _held = fd
    tmp = pid_file().with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, pid_file())
    return True


def release_pid() -> None:
    global _held
    if _held is None:
        return
    with contextlib.suppress(FileNotFoundError, ValueError):
        if int(pid_file().read_text().strip()) == os.getpid():
            pid_file().unlink()
    os.close(_held)
    _held = None


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
