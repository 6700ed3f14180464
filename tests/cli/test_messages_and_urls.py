"""How the CLI words server errors and spells server URLs (unit tests of one function each)."""

from __future__ import annotations

import httpx

from mangahub.cli.api import error_message


def envelope(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message}}, headers=headers
    )


def test_a_rate_limit_says_when_to_retry() -> None:
    response = envelope(
        429, "rate_limited", "too many failed logins, try again later", **{"Retry-After": "42"}
    )
    assert error_message(response) == (
        "rate_limited",
        "too many failed logins, try again later (retry in 42 s)",
    )


def test_without_retry_after_the_message_is_the_servers() -> None:
    response = envelope(503, "unavailable", "database unavailable; retry later")
    assert error_message(response) == ("unavailable", "database unavailable; retry later")


def test_one_server_has_one_spelling() -> None:
    from mangahub.cli.paths import normalize_server

    same = {
        normalize_server(url)
        for url in (
            "http://localhost:8084",
            "HTTP://LocalHost:8084/",
            "localhost:8084",
            " http://LOCALHOST:8084// ",
        )
    }
    assert same == {"http://localhost:8084"}
    assert normalize_server("https://[::1]:8084/") == "https://[::1]:8084"
