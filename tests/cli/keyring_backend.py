"""A keyring backend for tests (no OS keyring daemon runs here): entries in a JSON
file named by ``MANGAHUB_TEST_KEYRING``. Selected in the CLI's environment with
``PYTHON_KEYRING_BACKEND=tests.cli.keyring_backend.JsonFileKeyring``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class JsonFileKeyring(KeyringBackend):
    priority = 1

    @property
    def path(self) -> Path:
        return Path(os.environ["MANGAHUB_TEST_KEYRING"])

    def _load(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return data

    def get_password(self, service: str, username: str) -> str | None:
        value = self._load().get(f"{service}\n{username}")
        return value if isinstance(value, str) else None

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}\n{username}"] = password
        self.path.write_text(json.dumps(data))

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}\n{username}", None) is None:
            raise PasswordDeleteError("no such password")
        self.path.write_text(json.dumps(data))
