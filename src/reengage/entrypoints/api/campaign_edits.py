"""Fine edits of a campaign draft: steps, blocks and exclusions one at a time (the same
edits, and the same checks, as the manager bot's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from reengage.domain import campaign_draft as cd
from reengage.domain.schedule import ScheduleError
from reengage.entrypoints.api.campaigns import CampaignOut, audit_campaign, campaign_out
from reengage.entrypoints.api.deps import Actor, OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, Id, Index, Text, UserId
from reengage.runtime import Runtime
from reengage.services.campaign_edit import edit_draft
from reengage.services.campaigns import campaign_state
from reengage.services.errors import InvalidInput

campaign_edits_router = APIRouter(
    prefix="/v1/bots/{bot_id}/campaign",
    tags=["recovery"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


class StepIn(BaseModel):
    schedule: Text = Field(
        max_length=200,
        description="30m, 2h, 1d12h, tomorrow 09:00 / amanhã 09:00, +2d 18:30, "
        "+1d usual 18:00 / +1d horário habitual 18:00",
    )


class MoveIn(BaseModel):
    offset: int = Field(description="-1 moves the step up, +1 down", ge=-1, le=1)


class ExclusionIn(BaseModel):
    user_id: UserId


def _edit(
    runtime: Runtime,
    org_id: int,
    actor: str,
    bot_id: int,
    edit: Callable[[dict[str, Any]], cd.Draft],
) -> CampaignOut:
    now = runtime.clock.now()
    try:
        with runtime.sessions.begin() as session:
            before = campaign_state(session, org_id, bot_id)
            row = edit_draft(session, org_id, bot_id, edit, now)
            audit_campaign(session, org_id, actor, bot_id, "campaign.edit", now, before)
            return campaign_out(session, row)
    except (ScheduleError, cd.DraftError) as exc:
        field = "schedule" if isinstance(exc, ScheduleError) else exc.code
        raise InvalidInput.of(exc, field) from exc


@campaign_edits_router.post("/steps", response_model=CampaignOut)
def add_step(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, body: StepIn
) -> CampaignOut:
    """Append a step (without blocks) to the draft."""
    return _edit(runtime, org_id, actor, bot_id, lambda d: cd.add_step(d, body.schedule))


@campaign_edits_router.put("/steps/{step}/schedule", response_model=CampaignOut)
def set_schedule(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, step: Index, body: StepIn
) -> CampaignOut:
    """Change a step's schedule (steps are numbered from 0)."""
    return _edit(runtime, org_id, actor, bot_id, lambda d: cd.set_schedule(d, step, body.schedule))


@campaign_edits_router.post("/steps/{step}/move", response_model=CampaignOut)
def move_step(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, step: Index, body: MoveIn
) -> CampaignOut:
    """Swap a step with the one above (-1) or below (+1)."""
    return _edit(runtime, org_id, actor, bot_id, lambda d: cd.move_step(d, step, body.offset))


@campaign_edits_router.delete("/steps/{step}", response_model=CampaignOut)
def delete_step(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, step: Index
) -> CampaignOut:
    """Remove a step and its blocks from the draft."""
    return _edit(runtime, org_id, actor, bot_id, lambda d: cd.delete_step(d, step))


@campaign_edits_router.delete("/steps/{step}/blocks/{block}", response_model=CampaignOut)
def delete_block(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, step: Index, block: Index
) -> CampaignOut:
    """Remove one block of a step."""
    return _edit(runtime, org_id, actor, bot_id, lambda d: cd.delete_block(d, step, block))


@campaign_edits_router.post("/exclusions", response_model=CampaignOut)
def add_exclusion(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, body: ExclusionIn
) -> CampaignOut:
    """Never contact this user."""
    return _edit(runtime, org_id, actor, bot_id, lambda d: cd.add_exclusion(d, body.user_id))


@campaign_edits_router.delete("/exclusions/{user_id}", response_model=CampaignOut)
def remove_exclusion(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, user_id: UserId
) -> CampaignOut:
    """Contact this user again."""
    return _edit(runtime, org_id, actor, bot_id, lambda d: cd.remove_exclusion(d, user_id))
