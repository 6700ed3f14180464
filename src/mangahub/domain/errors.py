"""One error tree for the whole service, mapped once per door.

MangaHubError
 ├── BadRequest          bad_request       (malformed input the schema could not name)
 ├── ValidationFailed    validation_error  (well-formed input that breaks a rule)
 ├── Unauthorized        unauthorized
 ├── Forbidden           forbidden
 ├── NotFound            not_found
 ├── Conflict            conflict
 ├── RateLimited         rate_limited      (carries retry_after seconds)
 ├── Unavailable         unavailable       (a dependency is down; retry later)
 └── InternalError       internal
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

ErrorCode = Literal[
    "bad_request",
    "validation_error",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "rate_limited",
    "unavailable",
    "internal",
]


class MangaHubError(Exception):
    """Base of every error a client may see."""

    code: ClassVar[ErrorCode] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class BadRequest(MangaHubError):
    code = "bad_request"
    http_status = 400


class ValidationFailed(MangaHubError):
    code = "validation_error"
    http_status = 422


class Unauthorized(MangaHubError):
    code = "unauthorized"
    http_status = 401


class Forbidden(MangaHubError):
    code = "forbidden"
    http_status = 403


class NotFound(MangaHubError):
    code = "not_found"
    http_status = 404


class Conflict(MangaHubError):
    code = "conflict"
    http_status = 409


class RateLimited(MangaHubError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = max(1, retry_after)


class Unavailable(MangaHubError):
    code = "unavailable"
    http_status = 503


class InternalError(MangaHubError):
    code = "internal"
    http_status = 500
