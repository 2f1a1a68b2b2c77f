"""Recovery campaigns: draft, publish, enable, preview; episodes and deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Delivery, Episode
from reengage.delivery.outbox import resend_delivery
from reengage.domain.duration import format_duration
from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, Id, JsonObject, Text
from reengage.services import recovery
from reengage.services.recovery_preview import preview_campaign

recovery_router = APIRouter(
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
        warnings=recovery.warnings(session, row),
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


@recovery_router.put(
    "/v1/bots/{bot_id}/campaign",
    response_model=CampaignOut,
    description="Create or replace the draft of the bot's recovery campaign. "
    "Fields: time_zone, threshold (default 10m), ignore_paid (default true), "
    "send_window {start, end, weekdays}, reentry_cooldown, holdout_percent, "
    "optout_keywords, exclusions (operational: they apply at once), steps [{schedule, "
    "blocks [{kind, text | caption, url | asset_id, delay, auto_delete_after, active}]}]; "
    "WhatsApp bots also take blocks {kind: template, template: {name, language, "
    "parameters}} (a parameter may hold {name} or {name|fallback}). Schedules: "
    "30m, 2h, 1d12h, tomorrow 09:00 / amanhã 09:00, +2d 18:30.",
)
def put_campaign(runtime: RuntimeDep, org_id: OrgId, bot_id: Id, body: JsonObject) -> CampaignOut:
    with runtime.sessions.begin() as session:
        row = recovery.put_draft(session, org_id, bot_id, body, runtime.clock.now())
        return campaign_out(session, row)


@recovery_router.get("/v1/bots/{bot_id}/campaign", response_model=CampaignOut)
def get_campaign(runtime: RuntimeDep, org_id: OrgId, bot_id: Id) -> CampaignOut:
    """The bot's campaign: its draft, published version and switch."""
    with runtime.sessions() as session:
        return campaign_out(session, recovery.get_campaign(session, org_id, bot_id))


@recovery_router.post("/v1/bots/{bot_id}/campaign/publish")
def publish(runtime: RuntimeDep, org_id: OrgId, bot_id: Id) -> dict[str, int]:
    """Freeze the draft as a new version. Running episodes finish on the version they began."""
    with runtime.sessions.begin() as session:
        return {"version": recovery.publish(session, org_id, bot_id, runtime.clock.now())}


@recovery_router.put("/v1/bots/{bot_id}/campaign/enabled", response_model=CampaignOut)
def enable(runtime: RuntimeDep, org_id: OrgId, bot_id: Id, body: EnabledIn) -> CampaignOut:
    """Switch the campaign on or off (off stops every running episode)."""
    with runtime.sessions.begin() as session:
        row = recovery.set_enabled(session, org_id, bot_id, body.enabled, runtime.clock.now())
        return campaign_out(session, row)


@recovery_router.post("/v1/bots/{bot_id}/campaign/preview")
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
        }
        for s in preview.steps
    ]


@recovery_router.get("/v1/bots/{bot_id}/campaign/stats")
def stats(runtime: RuntimeDep, org_id: OrgId, bot_id: Id) -> list[dict[str, int]]:
    """Per step: how many episodes it went out in, how many users came back within 24 h of
    it, and how many paid after it — holdout episodes apart, to measure lift."""
    with runtime.sessions() as session:
        return recovery.step_stats(session, org_id, bot_id)


class EpisodeOut(BaseModel):
    id: int
    bot_id: int
    contact_id: int
    version: int
    status: str
    end_reason: str | None
    holdout: bool
    next_step: int
    next_due_at: datetime | None
    started_at: datetime
    ended_at: datetime | None


@recovery_router.get("/v1/episodes", response_model=list[EpisodeOut])
def list_episodes(
    runtime: RuntimeDep,
    org_id: OrgId,
    bot_id: Id | None = None,
    contact_id: Id | None = None,
    status: Annotated[Text | None, Query(max_length=16)] = None,
    since: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EpisodeOut]:
    """Recovery episodes, newest first."""
    stmt = select(Episode).where(Episode.org_id == org_id).order_by(Episode.id.desc()).limit(limit)
    for column, value in (
        (Episode.bot_id, bot_id),
        (Episode.contact_id, contact_id),
        (Episode.status, status),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(Episode.started_at >= since)
    with runtime.sessions() as session:
        return [EpisodeOut.model_validate(e, from_attributes=True) for e in session.scalars(stmt)]


class DeliveryOut(BaseModel):
    id: int
    bot_id: int
    contact_id: int
    dedup_key: str
    purpose: str
    status: str
    reason: str | None
    channel_message_id: str | None
    platform_status: str | None
    error: str | None
    attempts: int
    scheduled_at: datetime
    requested_at: datetime | None = Field(description="When the last request left")
    sent_at: datetime | None
    finished_at: datetime | None


@recovery_router.get("/v1/deliveries", response_model=list[DeliveryOut])
def list_deliveries(
    runtime: RuntimeDep,
    org_id: OrgId,
    bot_id: Id | None = None,
    contact_id: Id | None = None,
    status: Annotated[Text | None, Query(max_length=16)] = None,
    purpose: Annotated[Text | None, Query(max_length=32)] = None,
    reason: Annotated[Text | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryOut]:
    """The delivery audit trail: every message reengage sent, skipped or failed.
    `status=failed&reason=ambiguous` lists the sends whose outcome is unknown (the request
    left and no answer came): review them, and send again with `POST .../resend`."""
    stmt = select(Delivery).where(Delivery.org_id == org_id).order_by(Delivery.id.desc())
    for column, value in (
        (Delivery.bot_id, bot_id),
        (Delivery.contact_id, contact_id),
        (Delivery.status, status),
        (Delivery.purpose, purpose),
        (Delivery.reason, reason),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    with runtime.sessions() as session:
        return [
            DeliveryOut.model_validate(d, from_attributes=True)
            for d in session.scalars(stmt.limit(limit))
        ]


@recovery_router.post(
    "/v1/deliveries/{delivery_id}/resend", response_model=DeliveryOut, status_code=202
)
def resend(runtime: RuntimeDep, org_id: OrgId, delivery_id: Id) -> DeliveryOut:
    """Send a failed delivery again (an ambiguous one, after review): a new delivery with
    the same message, under the same rules (never after the user answered, opted out or
    blocked the bot). Idempotent: asking twice gives the same new delivery."""
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        new_id, timer = resend_delivery(session, org_id, delivery_id, now)
    if timer is not None:
        runtime.timers.schedule([timer])
    with runtime.sessions() as session:
        return DeliveryOut.model_validate(session.get_one(Delivery, new_id), from_attributes=True)
