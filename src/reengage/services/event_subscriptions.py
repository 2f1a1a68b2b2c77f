"""Event subscriptions: where an organization's events go, their deliveries and attempts,
and a delivery sent again by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import structlog
from sqlalchemy.orm import Session

from reengage.adapters.channels.standard_webhooks import new_secret
from reengage.adapters.crypto import Credentials
from reengage.adapters.db.models import (
    EventAttempt,
    EventDelivery,
    EventSubscription,
    OutboundEvent,
)
from reengage.domain import event as ev
from reengage.events.outbox import event_timer, publish_on_commit
from reengage.i18n import N_
from reengage.services.errors import InvalidInput
from reengage.services.tenancy import owned, scoped, scoped_columns

log = structlog.get_logger(__name__)

MAX_LISTED = 500


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    """What a caller sets on a subscription (None: left as it is)."""

    url: str | None = None
    event_types: list[str] | None = None
    enabled: bool | None = None
    description: str | None = None


def check_url(url: str) -> str:
    """An absolute http(s) URL, or InvalidInput naming `url`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(N_("url must be an absolute http or https URL"), "url")
    return url


def check_types(patterns: list[str]) -> list[str]:
    problem = ev.check_patterns(patterns)
    if problem:
        raise InvalidInput(problem, "event_types")
    return sorted(set(patterns))


def create(
    session: Session,
    credentials: Credentials,
    org_id: int,
    change: SubscriptionChange,
    now: datetime,
) -> tuple[EventSubscription, str]:
    """A new subscription and its secret (shown this once)."""
    if change.url is None or change.event_types is None:
        raise InvalidInput(N_("url and event_types are required"), "url")
    secret = new_secret()
    sub = EventSubscription(
        org_id=org_id,
        url=check_url(change.url),
        description=change.description,
        secret=credentials.encrypt({"secret": secret}),
        event_types=check_types(change.event_types),
        enabled=True if change.enabled is None else change.enabled,
        created_at=now,
        updated_at=now,
    )
    session.add(sub)
    session.flush()
    log.info("events.subscription_created", org_id=org_id, subscription_id=sub.id)
    return sub, secret


def get(session: Session, org_id: int, subscription_id: int) -> EventSubscription:
    return owned(session, EventSubscription, org_id, subscription_id, field="subscription_id")


def list_all(session: Session, org_id: int) -> list[EventSubscription]:
    return list(session.scalars(scoped(EventSubscription, org_id).order_by(EventSubscription.id)))


def change(
    session: Session, org_id: int, subscription_id: int, change: SubscriptionChange, now: datetime
) -> EventSubscription:
    """Change what is given; enabling a subscription again forgets its failures."""
    sub = get(session, org_id, subscription_id)
    if change.url is not None:
        sub.url = check_url(change.url)
    if change.event_types is not None:
        sub.event_types = check_types(change.event_types)
    if change.description is not None:
        sub.description = change.description
    if change.enabled is not None:
        if change.enabled and not sub.enabled:
            sub.failing_since, sub.disabled_reason, sub.disabled_at = None, None, None
        elif not change.enabled and sub.enabled:
            sub.disabled_reason, sub.disabled_at = "by_operator", now
        sub.enabled = change.enabled
    sub.updated_at = now
    return sub


def delete(session: Session, org_id: int, subscription_id: int) -> None:
    session.delete(get(session, org_id, subscription_id))


def rotate_secret(
    session: Session, credentials: Credentials, org_id: int, subscription_id: int, now: datetime
) -> tuple[EventSubscription, str]:
    """A new secret; the one before still signs (a second signature) for the overlap."""
    sub = get(session, org_id, subscription_id)
    secret = new_secret()
    sub.previous_secret, sub.previous_until = sub.secret, now + ev.ROTATION_OVERLAP
    sub.secret = credentials.encrypt({"secret": secret})
    sub.updated_at = now
    log.info("events.secret_rotated", org_id=org_id, subscription_id=sub.id)
    return sub, secret


def deliveries(
    session: Session,
    org_id: int,
    subscription_id: int,
    status: str | None = None,
    limit: int = 100,
) -> list[EventDelivery]:
    """A subscription's deliveries, newest first."""
    get(session, org_id, subscription_id)
    stmt = scoped(EventDelivery, org_id, EventDelivery.subscription_id == subscription_id)
    if status is not None:
        stmt = stmt.where(EventDelivery.status == status)
    return list(session.scalars(stmt.order_by(EventDelivery.id.desc()).limit(limit)))


def attempts(session: Session, org_id: int, delivery_id: int) -> list[EventAttempt]:
    """Every attempt of one delivery, oldest first."""
    owned(session, EventDelivery, org_id, delivery_id, field="delivery_id")
    return list(
        session.scalars(
            scoped(EventAttempt, org_id, EventAttempt.delivery_id == delivery_id)
            .order_by(EventAttempt.id)
            .limit(MAX_LISTED)
        )
    )


def resend(session: Session, org_id: int, delivery_id: int, now: datetime) -> EventDelivery:
    """Send a settled delivery again (same `webhook-id`: receivers that have it drop it), with
    a fresh retry period; its timer is published when the transaction commits."""
    row = owned(session, EventDelivery, org_id, delivery_id, field="delivery_id", for_update=True)
    if row.status == "pending":
        raise InvalidInput(N_("this delivery is still being sent"), "delivery_id")
    sub = get(session, org_id, row.subscription_id)
    if not sub.enabled:
        raise InvalidInput(N_("its subscription is disabled: enable it first"), "delivery_id")
    row.status, row.next_at, row.retry_from, row.finished_at = "pending", now, now, None
    log.info("events.resend", org_id=org_id, delivery_id=row.id)
    publish_on_commit(session, [event_timer(row.id, now)])
    return row


def event_types_of(session: Session, org_id: int, event_ids: list[int]) -> dict[int, str]:
    """The type of each of the organization's events."""
    if not event_ids:
        return {}
    rows = session.execute(
        scoped_columns(OutboundEvent, org_id, OutboundEvent.id, OutboundEvent.type).where(
            OutboundEvent.id.in_(set(event_ids))
        )
    ).tuples()
    return {event_id: event_type for event_id, event_type in rows}
