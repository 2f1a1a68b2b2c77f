"""Manager-bot admins: invite codes that bind a Telegram user to the organization."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut
from reengage.services.manager_access import create_invite

admins_router = APIRouter(tags=["admins"], responses={401: {"model": ErrorOut}})


class InviteOut(BaseModel):
    code: str
    expires_at: datetime
    start_command: str


@admins_router.post("/v1/admin-invites", response_model=InviteOut, status_code=201)
def invite_admin(runtime: RuntimeDep, org_id: OrgId) -> InviteOut:
    """A one-time code, valid 7 days, shown only now: the person sends `/start <code>` to the
    manager bot and becomes an admin of this organization there."""
    with runtime.sessions.begin() as session:
        code, expires_at = create_invite(session, org_id, runtime.clock.now())
    return InviteOut(code=code, expires_at=expires_at, start_command=f"/start {code}")
