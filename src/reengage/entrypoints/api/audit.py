"""The audit trail: recovery episodes and every delivery, and re-sending a failed one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field

from reengage.adapters.db.models import Delivery, Episode
from reengage.delivery.outbox import resend_delivery
from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, Id, Text
from reengage.services.tenancy import owned, scoped

audit_router = APIRouter(
    tags=["audit"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


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


@audit_router.get("/v1/episodes", response_model=list[EpisodeOut])
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
    stmt = scoped(Episode, org_id).order_by(Episode.id.desc()).limit(limit)
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


@audit_router.get("/v1/deliveries", response_model=list[DeliveryOut])
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
    stmt = scoped(Delivery, org_id).order_by(Delivery.id.desc())
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


@audit_router.post(
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
        created = owned(session, Delivery, org_id, new_id)
        return DeliveryOut.model_validate(created, from_attributes=True)
