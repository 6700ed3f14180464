"""POST /api/auth/register|login|refresh|revoke (also mounted at /auth for old clients)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel

from mangahub.domain.schemas import LoginIn, RefreshIn, RegisterIn, TokenPair, UserPublic
from mangahub.http.deps import RuntimeDep, client_address

router = APIRouter(tags=["auth"])

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "Invalid credentials"}}


class RevokeOut(BaseModel):
    status: Literal["ok"] = "ok"


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"description": "Username or email already registered"},
        429: {"description": "Too many registrations from this address; see Retry-After"},
    },
)
async def register(body: RegisterIn, request: Request, runtime: RuntimeDep) -> UserPublic:
    return await runtime.auth.register(body, client_address(request))


@router.post(
    "/login",
    responses={**_UNAUTHORIZED, 429: {"description": "Too many failed logins; see Retry-After"}},
)
async def login(body: LoginIn, request: Request, runtime: RuntimeDep) -> TokenPair:
    return await runtime.auth.login(body, client_address(request))


@router.post("/refresh", responses=_UNAUTHORIZED)
async def refresh(body: RefreshIn, runtime: RuntimeDep) -> TokenPair:
    return await runtime.auth.refresh(body.refresh_token)


@router.post("/revoke")
async def revoke(body: RefreshIn, runtime: RuntimeDep) -> RevokeOut:
    """Always 200, so the answer does not tell whether a token existed."""
    await runtime.auth.revoke(body.refresh_token)
    return RevokeOut()
