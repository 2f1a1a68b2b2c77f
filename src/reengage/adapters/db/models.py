"""The relational model: the source of truth."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from reengage.adapters.db.types import BigIntPK, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


def _org_fk() -> Mapped[int]:
    return mapped_column(BigInteger, ForeignKey("organization.id", ondelete="CASCADE"), index=True)


class Organization(Base):
    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="pt-BR")
    # One-voice rules (opt-out keywords, minimum gap): the organization's level.
    voice: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = _org_fk()
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Bot(Base):
    __tablename__ = "bot"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = _org_fk()
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))
    credentials: Mapped[bytes | None] = mapped_column(LargeBinary)
    language: Mapped[str | None] = mapped_column(String(8))
    inactivity_threshold_s: Mapped[int | None] = mapped_column(Integer)
    # The shortest silence any feature of this bot acts on: when its subject timer fires.
    wake_after_s: Mapped[int | None] = mapped_column(Integer)
    entry_flow: Mapped[str | None] = mapped_column(String(64))
    # The live recovery campaign's threshold: a closed conversation's timer is armed this long
    # after the close, so recovery counts its silence from the close.
    recovery_threshold_s: Mapped[int | None] = mapped_column(Integer)
    # One-voice rules (opt-out keywords, minimum gap): the bot's level, over the organization's.
    voice: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class Contact(Base):
    __tablename__ = "contact"
    __table_args__ = (UniqueConstraint("bot_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = _org_fk()
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
    org_id: Mapped[int] = _org_fk()
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
    """One accepted activity event; its primary key makes retries idempotent."""

    __tablename__ = "activity_event"

    org_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organization.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    bot_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[str] = mapped_column(String(128))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]


class ConversationEvent(Base):
    """The conversation's log: what reengage did and why. `dedup_key` makes effects once-only."""

    __tablename__ = "conversation_event"
    __table_args__ = (UniqueConstraint("conversation_id", "dedup_key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = _org_fk()
    conversation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("conversation.id", ondelete="CASCADE"), index=True
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


class TimerRow(Base):
    """The SQL timer store: one row per pending timer key."""

    __tablename__ = "timer"
    __table_args__ = (Index("ix_timer_run_at", "run_at"),)

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime]
    run_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    token: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Delivery(Base):
    """One message reengage sends: the idempotency record and the audit trail.

    `dedup_key` is unique per organization (e.g. `recovery:<episode>:<step>:<block>`), so a
    re-run of the same work finds the row instead of sending again.
    """

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("org_id", "dedup_key"),
        Index("ix_delivery_bot_id_channel_message_id", "bot_id", "channel_message_id"),
        Index("ix_delivery_contact_id", "contact_id"),
        Index(
            "ix_delivery_after_id",
            "after_id",
            postgresql_where=text("after_id IS NOT NULL"),
            sqlite_where=text("after_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = _org_fk()
    bot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bot.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contact.id", ondelete="CASCADE")
    )
    conversation_id: Mapped[int | None] = mapped_column(BigInteger)
    episode_id: Mapped[int | None] = mapped_column(BigInteger)
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


class MediaAsset(Base):
    """A media file stored once by reengage, uploaded to each bot at most once."""

    __tablename__ = "media_asset"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = _org_fk()
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class MediaUpload(Base):
    """The platform's id of an asset for one bot (a Telegram `file_id` is per bot)."""

    __tablename__ = "media_upload"

    bot_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bot.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("media_asset.id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]


class SimulatorMessage(Base):
    """A message in the simulator channel's chat (both directions)."""

    __tablename__ = "simulator_message"
    __table_args__ = (Index("ix_simulator_message_bot_id_chat_id", "bot_id", "chat_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = _org_fk()
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
    org_id: Mapped[int] = _org_fk()
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
    org_id: Mapped[int] = _org_fk()
    scope: Mapped[str] = mapped_column(String(300))
    level: Mapped[str] = mapped_column(String(16))
    bot_id: Mapped[int | None] = mapped_column(BigInteger)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class Campaign(Base):
    """A bot's recovery campaign. `draft` is edited; `publish` freezes it as a new version."""

    __tablename__ = "recovery_campaign"
    __table_args__ = (UniqueConstraint("bot_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = _org_fk()
    bot_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bot.id", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(default=False)
    draft: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Users never contacted: operational data, effective at once on running episodes.
    exclusions: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime]


class CampaignVersion(Base):
    """A published campaign, frozen: running episodes finish on the version they started."""

    __tablename__ = "recovery_campaign_version"
    __table_args__ = (UniqueConstraint("campaign_id", "version"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = _org_fk()
    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("recovery_campaign.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    published_at: Mapped[datetime]


class Episode(Base):
    """One inactivity episode of one contact: started by silence, ended by an answer, a
    payment, a stop, or the last step."""

    __tablename__ = "recovery_episode"
    __table_args__ = (
        UniqueConstraint("contact_id", "seq"),
        Index("ix_recovery_episode_campaign_id_status", "campaign_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = _org_fk()
    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("recovery_campaign.id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    bot_id: Mapped[int] = mapped_column(BigInteger)
    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    conversation_id: Mapped[int | None] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)  # the activity version the silence belongs to
    holdout: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default="running")
    end_reason: Mapped[str | None] = mapped_column(String(32))
    next_step: Mapped[int] = mapped_column(Integer, default=0)
    next_due_at: Mapped[datetime | None]
    last_sent_at: Mapped[datetime | None]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class AdminInvite(Base):
    """A one-time code an organization owner gives a person to become a manager-bot admin.
    Only the SHA-256 of the code is stored."""

    __tablename__ = "admin_invite"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    org_id: Mapped[int] = _org_fk()
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    used_by: Mapped[int | None] = mapped_column(BigInteger)


class UsedButton(Base):
    """A manager-bot button whose action is not idempotent, pressed once: a replay within its
    15 minutes is refused. Kept until the button expires."""

    __tablename__ = "used_button"
    __table_args__ = (Index("ix_used_button_expires_at", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime]


class ManagerAdmin(Base):
    """A Telegram user bound to an organization: they may use the manager bot for it."""

    __tablename__ = "manager_admin"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    org_id: Mapped[int] = _org_fk()
    language: Mapped[str] = mapped_column(String(8), default="pt-BR")
    created_at: Mapped[datetime]
