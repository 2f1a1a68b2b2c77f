"""Recovery campaigns: draft, publish, enable, exclusions (in campaign_edits), preview; results
in campaign_results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy.orm import Session

from reengage.domain.duration import format_duration
from reengage.entrypoints.api.deps import Actor, OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, Id, JsonObject, Text
from reengage.services import campaigns
from reengage.services.audit_log import record_change
from reengage.services.campaign_preview import preview_campaign

campaigns_router = APIRouter(
    tags=["recovery"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


class CampaignOut(BaseModel):
    bot_id: int
    enabled: bool
    version: int
    draft: dict[str, Any] = Field(description="What `publish` freezes as the next version")
    exclusions: list[str] = Field(
        default_factory=list,
        description="Users never contacted: operational, they apply at once (no publishing)",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What to know before publishing (WhatsApp: steps that can fall outside "
        "the 24-hour window without a template)",
    )


def campaign_out(session: Session, row: Any) -> CampaignOut:
    return CampaignOut(
        bot_id=row.bot_id,
        enabled=row.enabled,
        version=row.version,
        draft=dict(row.draft),
        exclusions=list(row.exclusions or ()),
        warnings=campaigns.warnings(session, row),
    )


class EnabledIn(BaseModel):
    enabled: bool


class PreviewIn(BaseModel):
    last_activity_at: AwareDatetime | None = Field(
        default=None, description="When the user was last active (default: now)"
    )
    time_zone: Text | None = Field(
        default=None, max_length=64, description="The contact's own IANA zone"
    )
    published: bool = Field(
        default=False, description="Preview the published version, not the draft"
    )


@campaigns_router.put(
    "/v1/bots/{bot_id}/campaign",
    response_model=CampaignOut,
    description="Create or replace the draft of the bot's recovery campaign. "
    "Fields: time_zone, threshold (default 10m), ignore_paid (default true), "
    "send_window {start, end, weekdays}, reentry_cooldown, holdout_percent, "
    "optout_keywords, exclusions (operational: they apply at once), steps [{schedule, "
    "blocks [{kind, text | caption, url | asset_id, delay, auto_delete_after, active}]}]; "
    "WhatsApp bots also take blocks {kind: template, template: {name, language, "
    "parameters}} (a parameter may hold {name} or {name|fallback}). Schedules: "
    "30m, 2h, 1d12h, tomorrow 09:00 / amanhã 09:00, +2d 18:30, +1d usual 18:00 / "
    "+1d horário habitual 18:00 (the contact's usual hour, else 18:00).",
)
def put_campaign(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, body: JsonObject
) -> CampaignOut:
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        before = campaigns.campaign_state(session, org_id, bot_id)
        row = campaigns.put_draft(session, org_id, bot_id, body, now)
        audit_campaign(session, org_id, actor, bot_id, "campaign.draft", now, before)
        return campaign_out(session, row)


def audit_campaign(
    session: Session,
    org_id: int,
    actor: str,
    bot_id: int,
    action: str,
    now: datetime,
    before: dict[str, Any] | None,
) -> None:
    """Write a campaign change, its state before and after, to the audit log."""
    after = campaigns.campaign_state(session, org_id, bot_id)
    subject = f"bot {bot_id} campaign"
    record_change(session, org_id, actor, action, subject, now, before=before, after=after)


@campaigns_router.get("/v1/bots/{bot_id}/campaign", response_model=CampaignOut)
def get_campaign(runtime: RuntimeDep, org_id: OrgId, bot_id: Id) -> CampaignOut:
    """The bot's campaign: its draft, published version and switch."""
    with runtime.sessions() as session:
        return campaign_out(session, campaigns.get_campaign(session, org_id, bot_id))


@campaigns_router.post("/v1/bots/{bot_id}/campaign/publish")
def publish(runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id) -> dict[str, int]:
    """Freeze the draft as a new version. Running episodes finish on the version they began."""
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        before = campaigns.campaign_state(session, org_id, bot_id)
        version = campaigns.publish(session, org_id, bot_id, now)
        audit_campaign(session, org_id, actor, bot_id, "campaign.publish", now, before)
        return {"version": version}


@campaigns_router.put("/v1/bots/{bot_id}/campaign/enabled", response_model=CampaignOut)
def enable(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, body: EnabledIn
) -> CampaignOut:
    """Switch the campaign on or off (off stops every running episode)."""
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        before = campaigns.campaign_state(session, org_id, bot_id)
        row = campaigns.set_enabled(session, org_id, bot_id, body.enabled, now)
        audit_campaign(session, org_id, actor, bot_id, "campaign.enabled", now, before)
        return campaign_out(session, row)


@campaigns_router.post("/v1/bots/{bot_id}/campaign/preview")
def preview(
    runtime: RuntimeDep, org_id: OrgId, bot_id: Id, body: PreviewIn
) -> list[dict[str, Any]]:
    """Each step's due time (UTC and local) and blocks for a user last active at the given
    time — computed by the same code the engine runs."""
    with runtime.sessions() as session:
        preview = preview_campaign(
            session,
            org_id,
            bot_id,
            body.last_activity_at or runtime.clock.now(),
            time_zone=body.time_zone,
            published=body.published,
        )
    return [
        {
            "step": s.index,
            "description": s.description,
            "due_at": s.due_at.isoformat(),
            "local": s.local.isoformat(),
            "blocks": [
                {
                    "kind": b.kind.value,
                    "text": b.text,
                    "url": b.url,
                    "template": b.template.name if b.template else None,
                    "delay": format_duration(b.delay),
                }
                for b in s.blocks
            ],
            "warning": preview.warnings.get(s.index),
            "source": s.source,
        }
        for s in preview.steps
    ]
