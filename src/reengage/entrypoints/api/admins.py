"""Manager-bot admins: invite codes that bind a Telegram user to the organization."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, Id
from reengage.services.manager_access import create_invite, list_admins, remove_admin

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


class AdminOut(BaseModel):
    telegram_user_id: int
    language: str
    created_at: datetime


@admins_router.get("/v1/admins", response_model=list[AdminOut])
def list_manager_admins(runtime: RuntimeDep, org_id: OrgId) -> list[AdminOut]:
    """The Telegram users who administer this organization through the manager bot."""
    with runtime.sessions() as session:
        return [
            AdminOut(
                telegram_user_id=a.telegram_user_id, language=a.language, created_at=a.created_at
            )
            for a in list_admins(session, org_id)
        ]


@admins_router.delete(
    "/v1/admins/{telegram_user_id}", status_code=204, responses={404: {"model": ErrorOut}}
)
def remove_manager_admin(runtime: RuntimeDep, org_id: OrgId, telegram_user_id: Id) -> None:
    """Remove an admin: their next press or message in the manager bot is refused, even on
    buttons still inside their 15 minutes."""
    with runtime.sessions.begin() as session:
        remove_admin(session, org_id, telegram_user_id)
