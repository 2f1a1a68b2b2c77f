"""Contacts and conversations: activity, the conversation log, inbound messages, flows and
policies, the simulator's transcript."""

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
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from reengage.adapters.db.models.base import Base, org_fk
from reengage.adapters.db.types import BigIntPK


class Contact(Base):
    __tablename__ = "contact"
    __table_args__ = (UniqueConstraint("bot_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    bot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bot.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(8))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    paid_at: Mapped[datetime | None]
    blocked_at: Mapped[datetime | None]
    opted_out_at: Mapped[datetime | None]
    # The last proactive message that went out, whatever feature sent it (for the minimum gap).
    last_proactive_at: Mapped[datetime | None]
    last_proactive_group: Mapped[str | None] = mapped_column(String(160))
    # When the contact is usually around: `domain.usual_hour.HourProfile.encode` (340 bytes),
    # learned where activity is written to the database, a batch at a time.
    hour_profile: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class Conversation(Base):
    __tablename__ = "conversation"
    __table_args__ = (
        # One open conversation per contact; closed ones are history.
        Index(
            "uq_conversation_open_contact",
            "contact_id",
            unique=True,
            postgresql_where=text("status <> 'closed'"),
            sqlite_where=text("status <> 'closed'"),
        ),
        Index("ix_conversation_inactivity_due_at", "inactivity_due_at"),
        Index("ix_conversation_contact_id", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    bot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bot.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contact.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16), default="bot")
    active_flow: Mapped[str | None] = mapped_column(String(128))
    active_node: Mapped[str | None] = mapped_column(String(128))
    handoff_queue: Mapped[str | None] = mapped_column(String(64))
    agent: Mapped[str | None] = mapped_column(String(128))
    # Timeout stages already run in the current silence (the one of `timeout_seq`).
    timeout_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    timeout_stage: Mapped[int] = mapped_column(Integer, default=0)
    context_variables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    activity_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    last_activity_at: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]
    last_inbound_message_at: Mapped[datetime | None]
    last_message_from_contact_at: Mapped[datetime | None]
    last_message_from_agent_at: Mapped[datetime | None]
    window_expires_at: Mapped[datetime | None]
    inactivity_due_at: Mapped[datetime | None]
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class ActivityRecord(Base):
    """One accepted activity event; its primary key makes retries idempotent. PostgreSQL: one
    partition per day of `occurred_at` (`adapters.db.partitions`), so the key holds the
    instant and a retry at another instant is looked up first (`activity_store`); SQLite: a
    plain table whose key is `(org_id, event_id)`."""

    __tablename__ = "activity_event"
    __table_args__ = ({"postgresql_partition_by": "RANGE (occurred_at)"},)

    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organization.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    bot_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[str] = mapped_column(String(128))
    occurred_at: Mapped[datetime] = mapped_column(primary_key=True)
    received_at: Mapped[datetime]


class ConversationEvent(Base):
    """The conversation's log: what reengage did and why. `dedup_key` makes effects once-only.
    PostgreSQL: partitioned by ranges of `conversation_id` (ids are issued in time order), so
    that key holds the partition key (`adapters.db.partitions`)."""

    __tablename__ = "conversation_event"
    __table_args__ = (
        UniqueConstraint("conversation_id", "dedup_key"),
        {"postgresql_partition_by": "RANGE (conversation_id)"},
    )

    # Issued by its sequence (the primary key, with the partition key, is composite).
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = org_fk()
    conversation_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("conversation.id", ondelete="CASCADE"),
        index=True,
        primary_key=True,
    )
    kind: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(64))
    dedup_key: Mapped[str] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class InboundMessage(Base):
    """What a user's message says beyond being activity (its text; the contact's name, zone
    or language), committed before the platform gets its answer and processed exactly once:
    `pending` → `applied` (decisions committed; `effects` still to record) → `done`."""

    __tablename__ = "inbound_message"
    __table_args__ = (
        UniqueConstraint("org_id", "event_id"),
        Index(
            "ix_inbound_message_open",
            "bot_id",
            "user_id",
            postgresql_where=text("status <> 'done'"),
            sqlite_where=text("status <> 'done'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organization.id", ondelete="CASCADE")
    )
    bot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bot.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[str] = mapped_column(String(128))
    text: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(200))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    outcome: Mapped[str | None] = mapped_column(String(32))
    effects: Mapped[list[Any]] = mapped_column(JSON, default=list)
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]


class SimulatorMessage(Base):
    """A message in the simulator channel's chat (both directions)."""

    __tablename__ = "simulator_message"
    __table_args__ = (Index("ix_simulator_message_bot_id_chat_id", "bot_id", "chat_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    bot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bot.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(128))
    direction: Mapped[str] = mapped_column(String(8))  # "in" from the user, "out" from the bot
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(String(5000))
    media_name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class FlowRow(Base):
    """A bot's flow definition (JSON), validated before it is stored."""

    __tablename__ = "flow"
    __table_args__ = (UniqueConstraint("bot_id", "key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    bot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bot.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PolicyRow(Base):
    """The inactivity policy settings of one level: `scope` is `organization`, `bot:<id>`,
    `flow:<bot id>:<flow>` or `node:<bot id>:<flow>:<node>`."""

    __tablename__ = "inactivity_policy"
    __table_args__ = (UniqueConstraint("org_id", "scope"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = org_fk()
    scope: Mapped[str] = mapped_column(String(300))
    level: Mapped[str] = mapped_column(String(16))
    bot_id: Mapped[int | None] = mapped_column(BigInteger)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]
