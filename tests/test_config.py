"""Settings: TOML file, MANGAHUB_* environment on top, generated secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from mangahub.config import ensure_secrets, load_settings


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
