"""Settings: TOML file, MANGAHUB_* environment on top, generated secrets."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from mangahub.config import ensure_secrets, load_settings
from mangahub.storage.database import Database


def test_toml_then_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mangahub.toml"
    config.write_text('http_port = 9100\ntcp_port = 9101\nredis_url = "redis://x:1/0"\n')
    monkeypatch.setenv("MANGAHUB_TCP_PORT", "9200")
    settings = load_settings(config)
    assert settings.http_port == 9100  # from the file
    assert settings.tcp_port == 9200  # the environment wins
    assert settings.redis_url == "redis://x:1/0"


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANGAHUB_HTTP_PORT", "70000")
    with pytest.raises(ValueError, match="http_port"):
        load_settings()


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "absent.toml")


def test_secrets_are_generated_once_and_kept(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    first = ensure_secrets(settings)
    second = ensure_secrets(settings)
    assert first.jwt_secret is not None and second.jwt_secret is not None
    assert first.jwt_secret.get_secret_value() == second.jwt_secret.get_secret_value()
    assert len(first.jwt_secret.get_secret_value()) >= 32
    assert (tmp_path / "jwt_secret.secret").stat().st_mode & 0o777 == 0o600
    assert first.internal_token is not None


def test_default_database_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'mangahub.db'}"


def _start_part(data_dir: Path, barrier: Any, results: Any) -> None:
    barrier.wait()
    settings = ensure_secrets(load_settings(data_dir=data_dir))
    assert settings.jwt_secret is not None and settings.internal_token is not None
    results.put(
        (settings.jwt_secret.get_secret_value(), settings.internal_token.get_secret_value())
    )


def test_parts_starting_together_on_a_fresh_data_dir_agree_on_the_secrets(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("fork")
    parts = 6
    for attempt in range(8):
        data_dir = tmp_path / f"data-{attempt}"
        barrier, results = context.Barrier(parts), context.Queue()
        processes = [
            context.Process(target=_start_part, args=(data_dir, barrier, results))
            for _ in range(parts)
        ]
        for process in processes:
            process.start()
        seen = {results.get(timeout=30) for _ in processes}
        for process in processes:
            process.join(30)
            assert process.exitcode == 0
        assert len(seen) == 1, f"{len(seen)} different secrets on one data dir"
        [(jwt, _)] = seen
        assert (data_dir / "jwt_secret.secret").read_text().strip() == jwt
        assert sorted(p.name for p in data_dir.iterdir()) == [
            "internal_token.secret",
            "jwt_secret.secret",
        ]  # no temporary file left behind


def test_the_data_dir_and_the_sqlite_file_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    old = os.umask(0o022)
    try:
        settings = ensure_secrets(load_settings(data_dir=data_dir))
        Database(settings.resolved_database_url)
    finally:
        os.umask(old)
    assert data_dir.stat().st_mode & 0o777 == 0o700
    assert (data_dir / "mangahub.db").stat().st_mode & 0o777 == 0o600
