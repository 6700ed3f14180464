"""POST /api/auth/register|login|refresh|revoke (also mounted at /auth for old clients)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel

from mangahub.domain.schemas import LoginIn, RefreshIn, RegisterIn, TokenPair, UserPublic
from mangahub.http.deps import RuntimeDep

router = APIRouter(tags=["auth"])

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "Invalid credentials"}}


class RevokeOut(BaseModel):
    status: Literal["ok"] = "ok"


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "Username or email already registered"}},
)
async def register(body: RegisterIn, runtime: RuntimeDep) -> UserPublic:
    return await runtime.auth.register(body)


@router.post(
    "/login",
    responses={**_UNAUTHORIZED, 429: {"description": "Too many failed logins; see Retry-After"}},
)
async def login(body: LoginIn, request: Request, runtime: RuntimeDep) -> TokenPair:
    # The brute-force guard counts per peer address; behind a proxy, run uvicorn with
    # --proxy-headers so this is the real client.
    address = request.client.host if request.client else "unknown"
    return await runtime.auth.login(body, address)


@router.post("/refresh", responses=_UNAUTHORIZED)
async def refresh(body: RefreshIn, runtime: RuntimeDep) -> TokenPair:
    return await runtime.auth.refresh(body.refresh_token)


@router.post("/revoke")
async def revoke(body: RefreshIn, runtime: RuntimeDep) -> RevokeOut:
    """Always 200, so the answer does not tell whether a token existed."""
    await runtime.auth.revoke(body.refresh_token)
    return RevokeOut()
