"""Who is calling: the ``authorization: Bearer <access token>`` metadata, verified."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mangahub.domain.errors import Unauthorized
from mangahub.security.tokens import Principal, TokenCodec

AUTHORIZATION_KEY = "authorization"
_MAX_TOKEN = 4096  # far above any access token we issue; bounds the work on garbage


def bearer_token(metadata: Iterable[Any] | None) -> str:
    """The token of the call's single ``authorization`` entry; Unauthorized when it is
    missing, repeated, or not a bearer credential."""
    values = [value for key, value in metadata or () if key.lower() == AUTHORIZATION_KEY]
    if not values:
        raise Unauthorized("missing bearer token")
    if len(values) > 1:
        raise Unauthorized("more than one authorization entry")
    value = values[0]
    if not isinstance(value, str):
        raise Unauthorized("authorization must be text")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("authorization must be 'Bearer <access token>'")
    if len(token) > _MAX_TOKEN:
        raise Unauthorized("invalid access token")
    return token


def authenticate(tokens: TokenCodec, metadata: Iterable[Any] | None) -> Principal:
    """The caller, from the token only (never from a field of the request)."""
    return tokens.verify(bearer_token(metadata))
