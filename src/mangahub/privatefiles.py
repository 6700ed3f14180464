"""Files and directories only their owner may read: the data dir, secrets, the
SQLite database."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) readable by its owner only; an existing
    directory keeps the mode its operator gave it."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


def create_exclusive(path: Path, content: str) -> bool:
    """Write ``content`` to a new ``path`` (mode 0600) in one step: a complete file
    appears or nothing does. False when ``path`` already exists, so of several
    processes starting at once exactly one creates it and the others read it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)  # fails if the name exists: the atomic O_EXCL of a whole file
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
