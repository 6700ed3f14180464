"""Short-lived access tokens for tests of session lifetime.

They come from the server's own codec, issued "in the past" so that they expire
within seconds. JWT ``exp`` has one-second resolution, so a token made to last ``n``
seconds lasts between ``n - 1`` and ``n``."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import jwt

from mangahub.app import Runtime
from mangahub.domain.enums import Role
from mangahub.security.tokens import Principal
from tests.conftest import UserSession


def short_token(runtime: Runtime, user: UserSession, seconds: float) -> str:
    """A valid access token of ``user`` with about ``seconds`` left (negative: expired)."""
    principal = Principal(uuid.UUID(user.id), user.username, user.email, Role.USER)
    issued = datetime.now(UTC) - timedelta(seconds=runtime.tokens.ttl_seconds - seconds)
    return runtime.tokens.issue(principal, now=issued)


def expiry(token: str) -> datetime:
    """The token's ``exp`` (read, not verified: it may have expired already)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return datetime.fromtimestamp(claims["exp"], UTC)


def seconds_left(token: str) -> float:
    """Until the token expires; negative once it has."""
    return (expiry(token) - datetime.now(UTC)).total_seconds()


async def until_expired(token: str, margin: float = 0.3) -> None:
    """Sleep until ``token`` has expired (by the server's clock, which is ours)."""
    await asyncio.sleep(max(0.0, seconds_left(token)) + margin)
