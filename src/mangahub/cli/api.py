"""The HTTP client behind every command: one request helper that maps MangaHub's
error envelope and transport failures to :class:`CliError`, and the access-token
life cycle (refreshed when it has under five minutes left)."""

from __future__ import annotations

import base64
import time
from typing import Any, Final

import httpx
import orjson

from mangahub.cli.credentials import Credentials, CredentialStore
from mangahub.cli.output import (
    EXIT_AUTH,
    EXIT_BY_CODE,
    EXIT_ERROR,
    EXIT_UNAVAILABLE,
    CliError,
)

REFRESH_MARGIN: Final = 300.0
"""Refresh the access token when it has less than this many seconds to live."""
TIMEOUT: Final = httpx.Timeout(15.0, connect=5.0)
# Uploading or building a whole list (up to 50 MiB) takes longer than one request.
FILE_TIMEOUT: Final = httpx.Timeout(120.0, connect=5.0)
SESSION_EXPIRED: Final = "session expired, run `mangahub auth login`"


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim, read without verifying the signature (the server verifies)."""
    try:
        payload = token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, int | float) else None
    except (IndexError, ValueError, AttributeError, orjson.JSONDecodeError):
        return None


def needs_refresh(token: str, now: float | None = None) -> bool:
    exp = token_expiry(token)
    return exp is None or exp - (time.time() if now is None else now) < REFRESH_MARGIN


def error_message(response: httpx.Response) -> tuple[str, str]:
    """``(code, message)`` from the server's error envelope (or the status line)."""
    try:
        body = response.json()
        error = body["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "internal", f"server answered {response.status_code} {response.reason_phrase}"
    details = error.get("details")
    if code == "validation_error" and isinstance(details, list) and details:
        first = details[0] if isinstance(details[0], dict) else {}
        field, why = first.get("field"), first.get("message")
        if why:
            message = f"{message}: {field}: {why}" if field else f"{message}: {why}"
    retry_after = response.headers.get("Retry-After", "")
    if code == "rate_limited" and retry_after.isdigit():
        # The server says how long; "try again later" alone leaves the user guessing.
        message = f"{message} (retry in {int(retry_after)} s)"
    return code, message


class Unreachable(CliError):
    """The server could not be reached at all (refused, timed out, no route)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_UNAVAILABLE)


class Api:
    """Requests to one MangaHub server, with the caller's credentials when asked."""

    def __init__(self, server: str, store: CredentialStore | None = None) -> None:
        self.server = server
        self.store = store or CredentialStore()
        self._http = httpx.Client(base_url=server, timeout=TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = False,
    ) -> Any:
        """Send one request; return the decoded body (None for 204). Errors raise
        :class:`CliError` with the server's message and a fitting exit code."""
        headers = {"Authorization": f"Bearer {self.access_token()}"} if auth else {}
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = self._send(method, path, json=json, params=query, headers=headers)
        if response.status_code == 401 and auth:
            # Revoked or expired early (server clock, secret rotated): one refresh, one retry.
            headers["Authorization"] = f"Bearer {self.access_token(force=True)}"
            response = self._send(method, path, json=json, params=query, headers=headers)
        if response.is_success:
            return None if response.status_code == 204 or not response.content else response.json()
        code, message = error_message(response)
        raise CliError(message, EXIT_BY_CODE.get(code, EXIT_ERROR))

    def call_bytes(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """An authenticated request whose body and answer are files, not JSON (list
        import and export); errors raise :class:`CliError` like :meth:`call`."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        for force in (False, True):
            headers = {"Authorization": f"Bearer {self.access_token(force=force)}"}
            response = self._send(
                method, path, content=content, params=query, headers=headers, timeout=FILE_TIMEOUT
            )
            if response.status_code != 401:
                break
        if response.is_success:
            return response
        code, message = error_message(response)
        raise CliError(message, EXIT_BY_CODE.get(code, EXIT_ERROR))

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise Unreachable(f"cannot reach MangaHub at {self.server}") from None
        except httpx.TimeoutException:
            raise Unreachable(f"MangaHub at {self.server} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"request to {self.server} failed: {exc}") from None

    # -- tokens -------------------------------------------------------------------------------

    def credentials(self) -> Credentials:
        creds = self.store.load(self.server)
        if creds is None:
            raise CliError(f"not logged in to {self.server}; run `mangahub auth login`", EXIT_AUTH)
        return creds

    def access_token(self, *, force: bool = False) -> str:
        """A usable access token, refreshed first when it is close to expiry."""
        creds = self.credentials()
        if not force and not needs_refresh(creds.access_token):
            return creds.access_token
        with self.store.lock():
            # Another process may have refreshed while we waited for the lock.
            latest = self.store.load(self.server)
            if latest is None:
                raise CliError(SESSION_EXPIRED, EXIT_AUTH)
            if latest.access_token != creds.access_token or (
                not force and not needs_refresh(latest.access_token)
            ):
                return latest.access_token
            return self._refresh(latest).access_token

    def _refresh(self, creds: Credentials) -> Credentials:
        response = self._send(
            "POST", "/api/auth/refresh", json={"refresh_token": creds.refresh_token}
        )
        if response.status_code in (400, 401, 422):
            raise CliError(SESSION_EXPIRED, EXIT_AUTH)
        if not response.is_success:
            code, message = error_message(response)
            raise CliError(message, EXIT_BY_CODE.get(code, EXIT_ERROR))
        body = response.json()
        fresh = Credentials(body["access_token"], body["refresh_token"], creds.username)
        self.store.save(self.server, fresh)
        return fresh
