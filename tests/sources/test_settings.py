"""Source settings: defaults, TOML and environment, and which clients they build."""

from __future__ import annotations

from pathlib import Path

import pytest

from mangahub.config import load_settings
from mangahub.sources.registry import build_source_clients


def test_defaults_keep_anilist_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANGAHUB_CONFIG", raising=False)
    settings = load_settings()
    assert settings.mangadex_enabled and not settings.anilist_enabled
    assert (settings.mangadex_requests_per_second, settings.mangadex_burst) == (5, 10)
    assert settings.anilist_requests_per_minute == 30
    assert settings.source_timeout_seconds == 30
    assert 0 < settings.federated_search_timeout_seconds <= 5


async def test_toml_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mangahub.toml"
    config.write_text(
        'mangadex_url = "http://127.0.0.1:9000/mangadex"\n'
        "mangadex_requests_per_second = 2.5\nanilist_enabled = true\n"
    )
    monkeypatch.setenv("MANGAHUB_CONFIG", str(config))  # restored after the test
    monkeypatch.setenv("MANGAHUB_FEDERATED_SEARCH_TIMEOUT_SECONDS", "1.5")
    monkeypatch.setenv("MANGAHUB_ANILIST_REQUESTS_PER_MINUTE", "20")
    settings = load_settings(config)
    assert settings.mangadex_requests_per_second == 2.5
    assert settings.federated_search_timeout_seconds == 1.5
    clients = build_source_clients(settings)
    try:
        assert clients.mangadex is not None and clients.mangadex.limiter.rate == 2.5
        assert clients.anilist is not None and clients.anilist.limiter.rate == pytest.approx(
            20 / 60
        )
        assert clients.disabled == []
    finally:
        await clients.aclose()


async def test_empty_url_or_disabled_builds_no_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANGAHUB_CONFIG", raising=False)
    monkeypatch.setenv("MANGAHUB_MANGADEX_URL", "")
    monkeypatch.setenv("MANGAHUB_ANILIST_ENABLED", "true")
    monkeypatch.setenv("MANGAHUB_ANILIST_URL", " ")
    clients = build_source_clients(load_settings())
    assert clients.enabled == [] and clients.disabled == ["mangadex", "anilist"]
    monkeypatch.setenv("MANGAHUB_MANGADEX_URL", "https://api.mangadex.org")
    monkeypatch.setenv("MANGAHUB_MANGADEX_ENABLED", "false")
    assert build_source_clients(load_settings()).mangadex is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MANGAHUB_MANGADEX_REQUESTS_PER_SECOND", "0"),
        ("MANGAHUB_MANGADEX_BURST", "0"),
        ("MANGAHUB_ANILIST_REQUESTS_PER_MINUTE", "-1"),
        ("MANGAHUB_FEDERATED_SEARCH_TIMEOUT_SECONDS", "0"),
    ],
)
def test_nonsense_rates_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.delenv("MANGAHUB_CONFIG", raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name.removeprefix("MANGAHUB_").lower()):
        load_settings()
