"""Where tokens are kept: the OS keyring, keyed by server URL, or — when no keyring
backend is available (keyring's ``fail`` backend, or a chain with nothing in it) —
a JSON file readable by the owner only (0600) in the config directory."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import keyring
import keyring.errors
import orjson
from keyring.backends import chainer, fail

from mangahub.cli.paths import config_dir, private_dir

SERVICE = "mangahub"
FILE_NAME = "credentials.json"

Backend = Literal["keyring", "file"]


@dataclass(frozen=True)
class Credentials:
    """What a login leaves behind for one server."""

    access_token: str
    refresh_token: str
    username: str

    @classmethod
    def from_json(cls, raw: str | bytes) -> Credentials | None:
        try:
            data = orjson.loads(raw)
            return cls(str(data["access_token"]), str(data["refresh_token"]), str(data["username"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None  # unreadable entry: treated as logged out

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()


def keyring_available() -> bool:
    ring = keyring.get_keyring()
    if isinstance(ring, fail.Keyring):
        return False
    return not (isinstance(ring, chainer.ChainerBackend) and not ring.backends)


class CredentialStore:
    """Load, save and delete one server's credentials wherever they belong."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.file = self.directory / FILE_NAME

    @property
    def backend(self) -> Backend:
        return "keyring" if keyring_available() else "file"

    def location(self) -> str:
        if self.backend == "keyring":
            ring = keyring.get_keyring()
            return f"keyring ({type(ring).__module__}.{type(ring).__name__})"
        return str(self.file)

    def load(self, server: str) -> Credentials | None:
        if keyring_available():
            try:
                raw = keyring.get_password(SERVICE, server)
            except keyring.errors.KeyringError:
                raw = None
            if raw:
                return Credentials.from_json(raw)
        entry = self._read_file().get(server)
        return Credentials.from_json(orjson.dumps(entry)) if entry else None

    def save(self, server: str, credentials: Credentials) -> Backend:
        if keyring_available():
            try:
                keyring.set_password(SERVICE, server, credentials.to_json())
            except keyring.errors.KeyringError:
                pass  # locked or broken keyring: keep them in the file instead
            else:
                self._drop_from_file(server)
                return "keyring"
        with self._flock("credentials.json.lock"):
            entries = self._read_file()
            entries[server] = orjson.loads(credentials.to_json())
            self._write_file(entries)
        return "file"

    def delete(self, server: str) -> bool:
        """Remove the server's credentials from both places; True if any existed."""
        found = False
        if keyring_available():
            try:
                if keyring.get_password(SERVICE, server) is not None:
                    keyring.delete_password(SERVICE, server)
                    found = True
            except keyring.errors.KeyringError:
                pass
        return self._drop_from_file(server) or found

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialize token refreshes between processes (the CLI and the sync daemon):
        refresh tokens rotate, and presenting a rotated one revokes the whole family."""
        with self._flock("credentials.lock"):
            yield

    @contextlib.contextmanager
    def _flock(self, name: str) -> Iterator[None]:
        private_dir(self.directory)
        fd = os.open(self.directory / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- the fallback file ------------------------------------------------------------------

    def _read_file(self) -> dict[str, Any]:
        try:
            data = orjson.loads(self.file.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_file(self, entries: dict[str, Any]) -> None:
        if not entries:
            self.file.unlink(missing_ok=True)
            return
        private_dir(self.directory)
        tmp = self.file.with_suffix(".tmp")
        # 0600 before the first byte: the tokens are never readable by others, even
        # briefly (O_CREAT's mode does not apply to a file left behind by a crash).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps(entries, option=orjson.OPT_INDENT_2))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.file)

    def _drop_from_file(self, server: str) -> bool:
        # Its own lock, not lock()'s (held by a refresh that saves): the file holds
        # every server's entry, and two writers would each drop the other's.
        with self._flock("credentials.json.lock"):
            entries = self._read_file()
            if server not in entries:
                return False
            del entries[server]
            self._write_file(entries)
            return True
