"""Durable timers and the delivery record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from reengage.adapters.db.models.base import Base, org_fk
from reengage.adapters.db.types import BigIntPK


class TimerRow(Base):
    """The SQL timer store: one row per pending timer key."""

    __tablename__ = "timer"
    __table_args__ = (
        Index("ix_timer_run_at", "run_at"),
        # The claims in flight (what a scheduler may add to is bounded by them).
        Index(
            "ix_timer_claimed",
            "run_at",
            postgresql_where=text("attempts > 0"),
            sqlite_where=text("attempts > 0"),
        ),
    )

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime]
    run_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    token: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


# The schema objects of one database only (Alembic's comparison skips them elsewhere).
ONLY_SQLITE = {"dialects": ("sqlite",)}


class Delivery(Base):
    """One message reengage sends: the idempotency record and the audit trail.

    `dedup_key` is unique per organization (e.g. `recovery:<episode>:<step>:<block>`), so a
    re-run of the same work finds the row instead of sending again. SQLite: a plain table
    with that unique key. PostgreSQL: partitioned by ranges of `id` (`id_partitions`), so
    the key lives in `delivery_key`, written by the same statement (`outbox.enqueue_many`).
    """

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("org_id", "dedup_key", info=ONLY_SQLITE).ddl_if(dialect="sqlite"),
        Index("ix_delivery_bot_id_channel_message_id", "bot_id", "channel_message_id"),
        Index("ix_delivery_contact_id", "contact_id"),
        # What the sweep and the rebuild page through: the few rows not yet settled.
        Index(
            "ix_delivery_pending",
            "id",
            postgresql_where=text("status IN ('scheduled', 'sending')"),
            sqlite_where=text("status IN ('scheduled', 'sending')"),
        ),
        # A campaign's results per step: the first block of each step, counted from the
        # index alone (the episode's start, version and arm are copied on its deliveries).
        Index(
            "ix_delivery_step_lead",
            "bot_id",
            "episode_started_at",
            postgresql_where=text("step_lead"),
            sqlite_where=text("step_lead"),
            postgresql_include=[
                "org_id",
                "episode_version",
                "episode_holdout",
                "step",
                "status",
                "reason",
                "platform_status",
            ],
        ),
        Index(
            "ix_delivery_after_id",
            "after_id",
            postgresql_where=text("after_id IS NOT NULL"),
            sqlite_where=text("after_id IS NOT NULL"),
        ),
        {"postgresql_partition_by": "RANGE (id)"},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    bot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bot.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contact.id", ondelete="CASCADE")
    )
    conversation_id: Mapped[int | None] = mapped_column(BigInteger)
    episode_id: Mapped[int | None] = mapped_column(BigInteger)
    # A recovery step's block: the step, and whether it is the step's first block (whose
    # outcome is the step's in the campaign's results); with its episode's start, version
    # and arm, which never change, so the results count steps without a join.
    step: Mapped[int | None] = mapped_column(Integer)
    step_lead: Mapped[bool] = mapped_column(default=False, server_default=false())
    episode_started_at: Mapped[datetime | None]
    episode_version: Mapped[int | None] = mapped_column(Integer)
    episode_holdout: Mapped[bool | None]
    # Sent only once this delivery (the block before it in a step) is settled: blocks keep
    # their order whatever claims them; the one before releases it.
    after_id: Mapped[int | None] = mapped_column(BigInteger)
    dedup_key: Mapped[str] = mapped_column(String(160))
    purpose: Mapped[str] = mapped_column(String(32))
    # Set on proactive messages (reengage speaks first): one group per decision (a timeout
    # stage, a recovery step). Opt-outs and the minimum gap apply to them; None: a reply.
    proactive_group: Mapped[str | None] = mapped_column(String(160))
    # Sent only while the conversation is still at this activity version (the user has not
    # written since the send was decided); None: unconditional.
    guard_seq: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[dict[str, Any]] = mapped_column(default=dict)
    channel_message_id: Mapped[str | None] = mapped_column(String(128))
    platform_status: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set, by the attempt that holds the claim, right before its request leaves: `sending`
    # without it was surely not sent (a crash before the call is retried, not ambiguous).
    requested_at: Mapped[datetime | None]
    # An outcome unknown (the request left, no answer): at most once (skip, the default) or,
    # with `retry_ambiguous`, at least once (sent again once; `ambiguous_at` records it).
    retry_ambiguous: Mapped[bool] = mapped_column(default=False)
    ambiguous_at: Mapped[datetime | None]
    # Retries of a send that surely did not reach the platform stop here (skipped `expired`).
    valid_until: Mapped[datetime | None]
    # Delete the sent message this long after sending (Telegram: only within 48 h).
    delete_after_s: Mapped[int | None] = mapped_column(Integer)
    delete_status: Mapped[str | None] = mapped_column(String(64))
    scheduled_at: Mapped[datetime]
    sending_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]


class DeliveryKey(Base):
    """PostgreSQL: the once-only key of a delivery, `(org_id, dedup_key)`, which the
    partitioned `delivery` cannot hold (a unique key there must contain `id`). Written in the
    statement that writes the delivery, which is only written if its key was new; forgotten
    with its delivery's range past the retention. Empty on SQLite, where `delivery` keeps the
    unique key itself."""

    __tablename__ = "delivery_key"

    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organization.id", ondelete="CASCADE"), primary_key=True
    )
    dedup_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger)
