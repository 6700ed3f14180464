"""GET /api/admin/sync: the state of every catalog sync job (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from mangahub.http.deps import AdminUser, RuntimeDep
from mangahub.sync.state import all_states

router = APIRouter(
    tags=["admin"],
    responses={401: {"description": "Missing or invalid token"}, 403: {"description": "Not admin"}},
)


class SyncJobOut(BaseModel):
    sync_type: str
    status: str
    cursor: str | None
    last_run_at: datetime | None
    last_success_at: datetime | None
    error: str | None
    metadata: dict[str, Any]


class SyncStatesOut(BaseModel):
    data: list[SyncJobOut]


@router.get("/sync")
async def sync_jobs(_: AdminUser, runtime: RuntimeDep) -> SyncStatesOut:
    states = await all_states(runtime.db)
    return SyncStatesOut(
        data=[
            SyncJobOut(
                sync_type=s.job,
                status=str(s.status),
                cursor=s.cursor,
                last_run_at=s.last_run_at,
                last_success_at=s.last_success_at,
                error=s.error,
                metadata=s.metadata,
            )
            for s in states
        ]
    )
