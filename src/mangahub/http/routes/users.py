"""GET /api/users/me. (/api/users/progress is its own router.)"""

from __future__ import annotations

from fastapi import APIRouter

from mangahub.domain.schemas import UserPublic
from mangahub.http.deps import CurrentUser, RuntimeDep

router = APIRouter(tags=["users"])


@router.get("/me", responses={401: {"description": "Missing or invalid access token"}})
async def me(principal: CurrentUser, runtime: RuntimeDep) -> UserPublic:
    # Read from the database, not the token: role or email may have changed since.
    return await runtime.auth.get_user(principal.user_id)
