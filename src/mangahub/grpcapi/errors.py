"""The domain error tree as gRPC status codes, written once for the gRPC door."""

from __future__ import annotations

import grpc

from mangahub.domain.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InternalError,
    MangaHubError,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

ERROR_CODE_KEY = "mangahub-error-code"
"""Trailing metadata naming the domain code (``not_found``, ``validation_error``...), so
clients can tell cases that share a gRPC code apart, as on every other door."""

RETRY_AFTER_KEY = "retry-after"

_CODES: tuple[tuple[type[MangaHubError], grpc.StatusCode], ...] = (
    (BadRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (ValidationFailed, grpc.StatusCode.INVALID_ARGUMENT),
    (Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (Forbidden, grpc.StatusCode.PERMISSION_DENIED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Conflict, grpc.StatusCode.ALREADY_EXISTS),
    (RateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (InternalError, grpc.StatusCode.INTERNAL),
)


def status_code(error: MangaHubError) -> grpc.StatusCode:
    """The gRPC code of a domain error; INTERNAL for anything unlisted (never UNKNOWN)."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def details_text(error: MangaHubError) -> str:
    """The status message: the error's message plus the field problems, when named."""
    problems = error.details if isinstance(error.details, list) else []
    parts = [
        f"{p['field']}: {p['message']}"
        for p in problems
        if isinstance(p, dict) and "field" in p and "message" in p
    ]
    return f"{error.message} ({'; '.join(parts)})" if parts else error.message


def trailing_metadata(error: MangaHubError) -> tuple[tuple[str, str], ...]:
    metadata: tuple[tuple[str, str], ...] = ((ERROR_CODE_KEY, error.code),)
    if isinstance(error, RateLimited):
        metadata += ((RETRY_AFTER_KEY, str(error.retry_after)),)
    return metadata
