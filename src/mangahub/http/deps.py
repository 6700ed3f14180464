"""Dependencies as types: the runtime, the caller, pagination."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mangahub.app import Runtime
from mangahub.domain.errors import Forbidden, Unauthorized, ValidationFailed
from mangahub.domain.schemas import MAX_PAGE_SIZE, Page
from mangahub.security.tokens import Principal

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="Access token from /api/auth/login")


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_principal(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token")
    return runtime.tokens.verify(credentials.credentials)


CurrentUser = Annotated[Principal, Depends(get_principal)]


async def get_optional_principal(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """The caller when a valid bearer token came with the request, else None (public
    reads answer anonymous callers too)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        return None
    try:
        return runtime.tokens.verify(credentials.credentials)
    except Unauthorized:
        return None


OptionalUser = Annotated[Principal | None, Depends(get_optional_principal)]


def client_address(request: Request) -> str:
    """The peer address, which per-address limits count; behind a proxy, run uvicorn
    with --proxy-headers so this is the real client."""
    return request.client.host if request.client else "unknown"


async def get_admin(principal: CurrentUser) -> Principal:
    if not principal.is_admin:
        raise Forbidden("admin role required")
    return principal


AdminUser = Annotated[Principal, Depends(get_admin)]


@dataclass(frozen=True, slots=True)
class Pagination:
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size

    def page_of(self, items: Sequence[T], total: int) -> Page[T]:
        """The list envelope every paginated endpoint answers with."""
        return Page(data=list(items), page=self.page, page_size=self.page_size, total=total)


async def get_pagination(
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=MAX_PAGE_SIZE, description="Alias of page_size.")
    ] = None,
) -> Pagination:
    if page_size is not None and limit is not None and page_size != limit:
        raise ValidationFailed(
            "page_size and limit disagree", details=[{"field": "limit", "message": "differs"}]
        )
    return Pagination(page=page, page_size=page_size or limit or 20)


PageParams = Annotated[Pagination, Depends(get_pagination)]
