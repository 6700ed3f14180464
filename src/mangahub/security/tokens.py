"""Access tokens (JWT, HS256 only) and the principal they carry."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import jwt

from mangahub.domain.enums import Role
from mangahub.domain.errors import Forbidden, Unauthorized

ISSUER = "mangahub"
ALGORITHM = "HS256"
DEFAULT_SCOPES = ("read", "write")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: built only from a verified token, never from a request body."""

    user_id: uuid.UUID
    username: str
    email: str
    role: Role
    scopes: tuple[str, ...] = field(default=DEFAULT_SCOPES)
    expires_at: datetime | None = None
    """When the token it came from expires; long-lived sessions end there unless renewed."""

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def seconds_left(self, now: datetime | None = None) -> float | None:
        """Lifetime left on the token (never negative); None when it carries no expiry."""
        if self.expires_at is None:
            return None
        return max(0.0, (self.expires_at - (now or datetime.now(UTC))).total_seconds())


RENEW_FLOOR = 1.0
"""Seconds at least between two renewal attempts of one session, so a token source
handing out tokens about to expire cannot turn renewal into a busy loop."""


def renew_after(expires_in: float) -> float:
    """Seconds a client of a long-lived session waits before renewing it in place: a
    fifth of the token's life, at most a minute, is left as margin for a slow refresh."""
    return max(0.0, expires_in - min(60.0, expires_in / 5))


class TokenCodec:
    """Issues and verifies access JWTs with one secret."""

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        if len(secret) < 32:
            raise ValueError("jwt_secret must be at least 32 characters")
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, principal: Principal, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        claims = {
            "sub": str(principal.user_id),
            "username": principal.username,
            "email": principal.email,
            "role": principal.role.value,
            "scopes": list(principal.scopes),
            "iss": ISSUER,
            "iat": now,
            "exp": now + timedelta(seconds=self.ttl_seconds),
            # Two tokens issued in the same second for the same user still differ.
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """Return the principal of a valid token or raise Unauthorized."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iat", "iss"]},
            )
            return Principal(
                user_id=uuid.UUID(claims["sub"]),
                username=str(claims["username"]),
                email=str(claims["email"]),
                role=Role(claims["role"]),
                scopes=tuple(str(s) for s in claims.get("scopes", DEFAULT_SCOPES)),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("access token expired") from exc
        except (jwt.InvalidTokenError, KeyError, ValueError, TypeError) as exc:
            raise Unauthorized("invalid access token") from exc

    def verify_renewal(self, token: str, user_id: uuid.UUID) -> Principal:
        """A fresh token for the open session of ``user_id``: Unauthorized when it is
        not valid, Forbidden when it is another user's (a session never changes user)."""
        principal = self.verify(token)
        if principal.user_id != user_id:
            raise Forbidden("a session cannot change user")
        return principal


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
