"""Events out: subscriptions (where an organization's events go), their deliveries, every
attempt, and a delivery sent again by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from reengage.adapters.db.models import EventAttempt, EventDelivery, EventSubscription
from reengage.domain import event as ev
from reengage.entrypoints.api.deps import OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import ErrorOut, Id, Text
from reengage.services import event_subscriptions as subs
from reengage.services.event_subscriptions import SubscriptionChange

event_subscriptions_router = APIRouter(
    tags=["events out"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)

Url = Annotated[Text, Field(min_length=1, max_length=2000, examples=["https://example.com/hook"])]
Pattern = Annotated[Text, Field(min_length=1, max_length=48, examples=["conversation.*"])]


class SubscriptionIn(BaseModel):
    """A subscription: the URL events are POSTed to and the event types it wants (a type,
    `group.*` or `*`)."""

    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: list[Pattern] = Field(min_length=1, max_length=ev.MAX_PATTERNS)
    description: Text | None = Field(default=None, max_length=200)
    enabled: bool = True


class SubscriptionPatch(BaseModel):
    """What to change; fields left out stay as they are. Enabling a subscription that was
    disabled for its failures starts its count afresh."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: list[Pattern] | None = Field(default=None, min_length=1, max_length=50)
    description: Text | None = Field(default=None, max_length=200)
    enabled: bool | None = None


class SubscriptionOut(BaseModel):
    id: int
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = Field(
        description="`failing` (24 h of failures; the manager bot tells the organization's "
        "admins), `by_operator`"
    )
    disabled_at: datetime | None
    failing_since: datetime | None
    previous_secret_until: datetime | None
    created_at: datetime
    updated_at: datetime


class SubscriptionWithSecret(SubscriptionOut):
    secret: str = Field(description="`whsec_...`: shown once; verify signatures with it")


class EventDeliveryOut(BaseModel):
    id: int
    event_id: int
    webhook_id: str
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_at: datetime
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


class EventAttemptOut(BaseModel):
    id: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


def subscription_out(sub: EventSubscription) -> SubscriptionOut:
    return SubscriptionOut(
        id=sub.id,
        url=sub.url,
        description=sub.description,
        event_types=list(sub.event_types),
        enabled=sub.enabled,
        disabled_reason=sub.disabled_reason,
        disabled_at=sub.disabled_at,
        failing_since=sub.failing_since,
        previous_secret_until=sub.previous_until,
        created_at=sub.created_at,
        updated_at=sub.updated_at,
    )


def _with_secret(sub: EventSubscription, secret: str) -> SubscriptionWithSecret:
    return SubscriptionWithSecret(**subscription_out(sub).model_dump(), secret=secret)


def delivery_out(row: EventDelivery, event_type: str) -> EventDeliveryOut:
    return EventDeliveryOut(
        id=row.id,
        event_id=row.event_id,
        webhook_id=ev.webhook_id(row.event_id),
        type=event_type,
        status=row.status,
        attempts=row.attempts,
        next_at=row.next_at,
        last_error=row.last_error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


@event_subscriptions_router.get("/v1/event-types", response_model=list[str])
def list_event_types() -> list[str]:
    """Every event type reengage sends (see docs/events.md for their payloads)."""
    return [t.value for t in ev.EventType]


@event_subscriptions_router.post(
    "/v1/event-subscriptions", response_model=SubscriptionWithSecret, status_code=201
)
def create_subscription(
    runtime: RuntimeDep, org_id: OrgId, body: SubscriptionIn
) -> SubscriptionWithSecret:
    """Subscribe a URL to event types. The answer carries the signing secret, once; it is
    stored encrypted and never shown again (rotate it to get a new one)."""
    change = SubscriptionChange(body.url, body.event_types, body.enabled, body.description)
    with runtime.sessions.begin() as session:
        sub, secret = subs.create(session, runtime.credentials, org_id, change, runtime.clock.now())
        return _with_secret(sub, secret)


@event_subscriptions_router.get("/v1/event-subscriptions", response_model=list[SubscriptionOut])
def list_subscriptions(runtime: RuntimeDep, org_id: OrgId) -> list[SubscriptionOut]:
    """The organization's subscriptions."""
    with runtime.sessions() as session:
        return [subscription_out(s) for s in subs.list_all(session, org_id)]


@event_subscriptions_router.get(
    "/v1/event-subscriptions/{subscription_id}", response_model=SubscriptionOut
)
def get_subscription(runtime: RuntimeDep, org_id: OrgId, subscription_id: Id) -> SubscriptionOut:
    """One subscription (its secret is never shown)."""
    with runtime.sessions() as session:
        return subscription_out(subs.get(session, org_id, subscription_id))


@event_subscriptions_router.patch(
    "/v1/event-subscriptions/{subscription_id}", response_model=SubscriptionOut
)
def change_subscription(
    runtime: RuntimeDep, org_id: OrgId, subscription_id: Id, body: SubscriptionPatch
) -> SubscriptionOut:
    """Change a subscription's URL, event types, description, or enable or disable it."""
    change = SubscriptionChange(body.url, body.event_types, body.enabled, body.description)
    with runtime.sessions.begin() as session:
        sub = subs.change(session, org_id, subscription_id, change, runtime.clock.now())
        return subscription_out(sub)


@event_subscriptions_router.delete("/v1/event-subscriptions/{subscription_id}", status_code=204)
def delete_subscription(runtime: RuntimeDep, org_id: OrgId, subscription_id: Id) -> None:
    """Delete a subscription, with its deliveries and their attempts."""
    with runtime.sessions.begin() as session:
        subs.delete(session, org_id, subscription_id)


@event_subscriptions_router.post(
    "/v1/event-subscriptions/{subscription_id}/rotate-secret",
    response_model=SubscriptionWithSecret,
)
def rotate_secret(
    runtime: RuntimeDep, org_id: OrgId, subscription_id: Id
) -> SubscriptionWithSecret:
    """A new signing secret, shown once. For 24 hours every event carries two signatures
    (the new secret's and the previous one's), so receivers can switch at their pace."""
    with runtime.sessions.begin() as session:
        sub, secret = subs.rotate_secret(
            session, runtime.credentials, org_id, subscription_id, runtime.clock.now()
        )
        return _with_secret(sub, secret)


@event_subscriptions_router.get(
    "/v1/event-subscriptions/{subscription_id}/deliveries",
    response_model=list[EventDeliveryOut],
)
def list_deliveries(
    runtime: RuntimeDep,
    org_id: OrgId,
    subscription_id: Id,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[EventDeliveryOut]:
    """The subscription's deliveries, newest first (one per event it wanted)."""
    with runtime.sessions() as session:
        rows = subs.deliveries(session, org_id, subscription_id, status, limit)
        types = subs.event_types_of(session, org_id, [r.event_id for r in rows])
        return [delivery_out(r, types[r.event_id]) for r in rows]


@event_subscriptions_router.get(
    "/v1/event-deliveries/{delivery_id}/attempts", response_model=list[EventAttemptOut]
)
def list_attempts(runtime: RuntimeDep, org_id: OrgId, delivery_id: Id) -> list[EventAttemptOut]:
    """Every attempt of a delivery, oldest first: the receiver's status code, or why there
    was none (a timeout, a refused connection)."""
    with runtime.sessions() as session:
        return [_attempt_out(a) for a in subs.attempts(session, org_id, delivery_id)]


def _attempt_out(a: EventAttempt) -> EventAttemptOut:
    return EventAttemptOut(
        id=a.id, at=a.at, status_code=a.status_code, error=a.error, duration_ms=a.duration_ms
    )


@event_subscriptions_router.post(
    "/v1/event-deliveries/{delivery_id}/resend", response_model=EventDeliveryOut, status_code=202
)
def resend_delivery(runtime: RuntimeDep, org_id: OrgId, delivery_id: Id) -> EventDeliveryOut:
    """Send a delivered or failed event again, now, with a fresh retry period. It keeps its
    `webhook-id`: a receiver that deduplicates drops what it already has."""
    with runtime.sessions.begin() as session:
        row = subs.resend(session, org_id, delivery_id, runtime.clock.now())
        return delivery_out(row, subs.event_types_of(session, org_id, [row.event_id])[row.event_id])
