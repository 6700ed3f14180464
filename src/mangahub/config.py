"""Typed settings: a TOML file (``--config`` or ``./mangahub.toml``) overridden by
``MANGAHUB_*`` environment variables."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mangahub.privatefiles import create_exclusive, make_private_dir

DEFAULT_CONFIG_FILE = Path("mangahub.toml")


class Settings(BaseSettings):
    """Everything an operator can set. Names match SPEC's config keys."""

    model_config = SettingsConfigDict(env_prefix="MANGAHUB_", extra="ignore")

    host: str = "0.0.0.0"
    http_port: int = Field(8084, ge=0, le=65535)
    tcp_port: int = Field(8081, ge=0, le=65535)
    # Open TCP sync connections one process holds; more are told `unavailable`.
    tcp_max_connections: int = Field(10_000, ge=1)
    udp_port: int = Field(8082, ge=0, le=65535)
    grpc_port: int = Field(8083, ge=0, le=65535)
    trigger_port: int = Field(8085, ge=0, le=65535)
    data_dir: Path = Path("data")
    database_url: str | None = None
    redis_url: str | None = None
    # Prefix for every Redis key and channel, so several deployments (or test
    # runs) can share one Redis server without seeing each other.
    redis_namespace: str = "mangahub"
    # Seconds one Redis call (connect or reply) may take; past it Redis counts as away
    # and requests stop waiting on it until a background ping succeeds.
    redis_timeout: float = Field(0.5, gt=0, le=30)
    jwt_secret: SecretStr | None = None
    internal_token: SecretStr | None = None
    admin_password: SecretStr | None = None
    mangadex_url: str = "https://api.mangadex.org"
    anilist_url: str = "https://graphql.anilist.co"
    anilist_enabled: bool = False
    # External sources (docs/sources.md): an empty URL or a disabled source is never asked.
    mangadex_enabled: bool = True
    mangadex_requests_per_second: float = Field(5.0, gt=0)
    mangadex_burst: int = Field(10, ge=1)
    anilist_requests_per_minute: float = Field(30.0, gt=0)
    source_timeout_seconds: float = Field(30.0, gt=0)
    # Source sync jobs (docs/sync.md).
    sync_poll_interval_hours: float = Field(24.0, gt=0)
    sync_chapter_interval_hours: float = Field(48.0, gt=0)
    sync_workers: int = Field(4, ge=1, le=64)
    sync_lease_seconds: float = Field(120.0, ge=1)
    # Each source's deadline inside one federated search (the caller's budget still caps it).
    federated_search_timeout_seconds: float = Field(3.0, gt=0)
    bcrypt_rounds: int = Field(12, ge=10, le=16)
    access_token_ttl_seconds: int = Field(15 * 60, gt=0)
    refresh_token_ttl_seconds: int = Field(7 * 24 * 3600, gt=0)
    # Brute-force guard for login: failures allowed per window, per account and per address.
    login_max_failures_per_account: int = Field(5, ge=1)
    login_max_failures_per_address: int = Field(20, ge=1)
    login_failure_window_seconds: int = Field(15 * 60, ge=1)
    # Registrations (each a bcrypt hash) per client address per window.
    register_max_per_address: int = Field(10, ge=1)
    register_window_seconds: int = Field(3600, ge=1)
    # Anonymous federated searches that ask an external source, per client address per
    # minute (signed-in callers are not counted here).
    federated_anonymous_per_minute: int = Field(30, ge=1)
    # Share of the MangaDex request rate that federated search can never take, so the
    # sync jobs always have it.
    mangadex_sync_reserve: float = Field(0.4, ge=0, lt=1)
    seed_catalog: bool = True
    log_level: str = "INFO"
    # One line per HTTP request (client, method, path, status, time) on "mangahub.access".
    http_access_log: bool = False
    # "text" for terminals, "json" (one object per line, with request ids) for collectors.
    log_format: Literal["text", "json"] = "text"
    # When set, this process also serves its TCP/UDP/WebSocket/Redis metrics on this port
    # (for parts without the HTTP door, whose /metrics already includes them).
    metrics_port: int | None = Field(None, ge=0, le=65535)

    _config_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("MANGAHUB_CONFIG") or DEFAULT_CONFIG_FILE
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'mangahub.db').resolve()}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the TOML file, the environment and explicit overrides."""
    if config_file is not None:
        if not config_file.is_file():
            raise FileNotFoundError(f"config file not found: {config_file}")
        os.environ["MANGAHUB_CONFIG"] = str(config_file)
    return Settings(**overrides)


def ensure_secrets(settings: Settings) -> Settings:
    """Fill unset secrets from files in the data dir, generating them on first start."""
    make_private_dir(settings.data_dir)
    updates: dict[str, SecretStr] = {}
    for name in ("jwt_secret", "internal_token"):
        if getattr(settings, name) is None:
            updates[name] = SecretStr(_read_or_create_secret(settings.data_dir / f"{name}.secret"))
    return settings.model_copy(update=updates) if updates else settings


def _read_or_create_secret(path: Path) -> str:
    for _ in range(3):
        with contextlib.suppress(FileNotFoundError):
            value = path.read_text().strip()
            if value:
                return value
            # An empty file (a crash of an old version mid-write): start over.
            path.unlink(missing_ok=True)
        value = secrets.token_urlsafe(48)
        if create_exclusive(path, value + "\n"):
            return value
    raise RuntimeError(f"could not create or read {path}")
