"""Events out: subscriptions, the events decided, their deliveries and every attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from reengage.adapters.db.models.base import Base, org_fk
from reengage.adapters.db.types import BigIntPK


class EventSubscription(Base):
    """Where an organization wants events sent, and which (patterns: a type, `group.*`, `*`).
    Secrets are encrypted like bot credentials; after a rotation the previous one still
    signs (a second signature) until `previous_until`."""

    __tablename__ = "event_subscription"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(200))
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_until: Mapped[datetime | None]
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(64))
    disabled_at: Mapped[datetime | None]
    # Since when every attempt failed (None: the last one succeeded).
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class OutboundEvent(Base):
    """One decision told to the subscriptions that wanted it (written in the decision's
    transaction, once per `dedup_key`)."""

    __tablename__ = "outbound_event"
    __table_args__ = (UniqueConstraint("org_id", "dedup_key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    type: Mapped[str] = mapped_column(String(48))
    dedup_key: Mapped[str] = mapped_column(String(160))
    # Its `data`; the envelope around it (id, type, version, timestamp) is built when sent.
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class EventDelivery(Base):
    """One event for one subscription: pending until delivered, or failed once its retry
    period is over. Deliveries of one subscription with the same `ordering_key` (the
    conversation, else the contact) go in the order of their ids."""

    __tablename__ = "event_delivery"
    __table_args__ = (
        UniqueConstraint("event_id", "subscription_id"),
        Index(
            "ix_event_delivery_pending",
            "subscription_id",
            "ordering_key",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("outbound_event.id", ondelete="CASCADE"), index=True
    )
    subscription_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("event_subscription.id", ondelete="CASCADE")
    )
    ordering_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime]
    # Its retry period runs from here: the event's time, or its last re-send by hand.
    retry_from: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class EventAttempt(Base):
    """One HTTP attempt of a delivery: its answer, or why there was none."""

    __tablename__ = "event_attempt"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("event_delivery.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300))
    duration_ms: Mapped[int] = mapped_column(Integer)


class ManagerNotice(Base):
    """One message of the manager bot to one admin (a subscription disabled...): written in
    the transaction of what it tells, once per admin and `dedup_key`; `sending` once its
    request may have left, so it is never sent twice."""

    __tablename__ = "manager_notice"
    __table_args__ = (
        UniqueConstraint("telegram_user_id", "dedup_key"),
        Index(
            "ix_manager_notice_pending",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    dedup_key: Mapped[str] = mapped_column(String(160))
    text: Mapped[str] = mapped_column(String(4096))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
