"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:37:44.763574
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "organization",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization")),
    )
    op.create_table(
        "timer",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_timer")),
    )
    op.create_index("ix_timer_run_at", "timer", ["run_at"], unique=False)
    op.create_table(
        "activity_event",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_activity_event_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "event_id", name=op.f("pk_activity_event")),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_api_key_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    op.create_index(op.f("ix_api_key_org_id"), "api_key", ["org_id"], unique=False)
    op.create_table(
        "bot",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("credentials", sa.LargeBinary(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("inactivity_threshold_s", sa.Integer(), nullable=True),
        sa.Column("wake_after_s", sa.Integer(), nullable=True),
        sa.Column("entry_flow", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_bot_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot")),
    )
    op.create_index(op.f("ix_bot_org_id"), "bot", ["org_id"], unique=False)
    op.create_table(
        "inactivity_policy",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("scope", sa.String(length=300), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_inactivity_policy_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inactivity_policy")),
        sa.UniqueConstraint("org_id", "scope", name=op.f("uq_inactivity_policy_org_id_scope")),
    )
    op.create_index(
        op.f("ix_inactivity_policy_org_id"), "inactivity_policy", ["org_id"], unique=False
    )
    op.create_table(
        "media_asset",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_media_asset_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_asset")),
    )
    op.create_index(op.f("ix_media_asset_org_id"), "media_asset", ["org_id"], unique=False)
    op.create_table(
        "contact",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot.id"], name=op.f("fk_contact_bot_id_bot"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_contact_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact")),
        sa.UniqueConstraint("bot_id", "external_id", name=op.f("uq_contact_bot_id_external_id")),
    )
    op.create_index(op.f("ix_contact_org_id"), "contact", ["org_id"], unique=False)
    op.create_table(
        "flow",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot.id"], name=op.f("fk_flow_bot_id_bot"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_flow_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow")),
        sa.UniqueConstraint("bot_id", "key", name=op.f("uq_flow_bot_id_key")),
    )
    op.create_index(op.f("ix_flow_org_id"), "flow", ["org_id"], unique=False)
    op.create_table(
        "media_upload",
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("file_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["media_asset.id"],
            name=op.f("fk_media_upload_asset_id_media_asset"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot.id"], name=op.f("fk_media_upload_bot_id_bot"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("bot_id", "asset_id", name=op.f("pk_media_upload")),
    )
    op.create_table(
        "recovery_campaign",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("draft", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot.id"], name=op.f("fk_recovery_campaign_bot_id_bot"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_recovery_campaign_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_campaign")),
        sa.UniqueConstraint("bot_id", name=op.f("uq_recovery_campaign_bot_id")),
    )
    op.create_index(
        op.f("ix_recovery_campaign_org_id"), "recovery_campaign", ["org_id"], unique=False
    )
    op.create_table(
        "simulator_message",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.String(length=5000), nullable=True),
        sa.Column("media_name", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot.id"], name=op.f("fk_simulator_message_bot_id_bot"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_simulator_message_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_simulator_message")),
    )
    op.create_index(
        "ix_simulator_message_bot_id_chat_id",
        "simulator_message",
        ["bot_id", "chat_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_simulator_message_org_id"), "simulator_message", ["org_id"], unique=False
    )
    op.create_table(
        "conversation",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("active_flow", sa.String(length=128), nullable=True),
        sa.Column("active_node", sa.String(length=128), nullable=True),
        sa.Column("handoff_queue", sa.String(length=64), nullable=True),
        sa.Column("agent", sa.String(length=128), nullable=True),
        sa.Column("timeout_seq", sa.BigInteger(), nullable=False),
        sa.Column("timeout_stage", sa.Integer(), nullable=False),
        sa.Column("context_variables", sa.JSON(), nullable=False),
        sa.Column("activity_seq", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_inbound_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_message_from_contact_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_message_from_agent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("inactivity_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot.id"], name=op.f("fk_conversation_bot_id_bot"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_conversation_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_conversation_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation")),
    )
    op.create_index("ix_conversation_contact_id", "conversation", ["contact_id"], unique=False)
    op.create_index(
        "ix_conversation_inactivity_due_at", "conversation", ["inactivity_due_at"], unique=False
    )
    op.create_index(op.f("ix_conversation_org_id"), "conversation", ["org_id"], unique=False)
    op.create_index(
        "uq_conversation_open_contact",
        "conversation",
        ["contact_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'closed'"),
        sqlite_where=sa.text("status <> 'closed'"),
    )
    op.create_table(
        "delivery",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=True),
        sa.Column("dedup_key", sa.String(length=160), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("guard_seq", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("channel_message_id", sa.String(length=128), nullable=True),
        sa.Column("platform_status", sa.String(length=16), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delete_after_s", sa.Integer(), nullable=True),
        sa.Column("delete_status", sa.String(length=64), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sending_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot.id"], name=op.f("fk_delivery_bot_id_bot"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_delivery_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_delivery_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery")),
        sa.UniqueConstraint("org_id", "dedup_key", name=op.f("uq_delivery_org_id_dedup_key")),
    )
    op.create_index(
        "ix_delivery_bot_id_channel_message_id",
        "delivery",
        ["bot_id", "channel_message_id"],
        unique=False,
    )
    op.create_index("ix_delivery_contact_id", "delivery", ["contact_id"], unique=False)
    op.create_index(op.f("ix_delivery_org_id"), "delivery", ["org_id"], unique=False)
    op.create_table(
        "recovery_campaign_version",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["recovery_campaign.id"],
            name=op.f("fk_recovery_campaign_version_campaign_id_recovery_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_recovery_campaign_version_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_campaign_version")),
        sa.UniqueConstraint(
            "campaign_id", "version", name=op.f("uq_recovery_campaign_version_campaign_id_version")
        ),
    )
    op.create_index(
        op.f("ix_recovery_campaign_version_org_id"),
        "recovery_campaign_version",
        ["org_id"],
        unique=False,
    )
    op.create_table(
        "recovery_episode",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("holdout", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("next_step", sa.Integer(), nullable=False),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["recovery_campaign.id"],
            name=op.f("fk_recovery_episode_campaign_id_recovery_campaign"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
            name=op.f("fk_recovery_episode_contact_id_contact"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_recovery_episode_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_episode")),
        sa.UniqueConstraint("contact_id", "seq", name=op.f("uq_recovery_episode_contact_id_seq")),
    )
    op.create_index(
        "ix_recovery_episode_campaign_id_status",
        "recovery_episode",
        ["campaign_id", "status"],
        unique=False,
    )
    op.create_index(
        op.f("ix_recovery_episode_contact_id"), "recovery_episode", ["contact_id"], unique=False
    )
    op.create_index(
        op.f("ix_recovery_episode_org_id"), "recovery_episode", ["org_id"], unique=False
    )
    op.create_table(
        "conversation_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("dedup_key", sa.String(length=128), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
            name=op.f("fk_conversation_event_conversation_id_conversation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_conversation_event_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_event")),
        sa.UniqueConstraint(
            "conversation_id",
            "dedup_key",
            name=op.f("uq_conversation_event_conversation_id_dedup_key"),
        ),
    )
    op.create_index(
        op.f("ix_conversation_event_conversation_id"),
        "conversation_event",
        ["conversation_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_conversation_event_org_id"), "conversation_event", ["org_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_conversation_event_org_id"), table_name="conversation_event")
    op.drop_index(op.f("ix_conversation_event_conversation_id"), table_name="conversation_event")
    op.drop_table("conversation_event")
    op.drop_index(op.f("ix_recovery_episode_org_id"), table_name="recovery_episode")
    op.drop_index(op.f("ix_recovery_episode_contact_id"), table_name="recovery_episode")
    op.drop_index("ix_recovery_episode_campaign_id_status", table_name="recovery_episode")
    op.drop_table("recovery_episode")
    op.drop_index(
        op.f("ix_recovery_campaign_version_org_id"), table_name="recovery_campaign_version"
    )
    op.drop_table("recovery_campaign_version")
    op.drop_index(op.f("ix_delivery_org_id"), table_name="delivery")
    op.drop_index("ix_delivery_contact_id", table_name="delivery")
    op.drop_index("ix_delivery_bot_id_channel_message_id", table_name="delivery")
    op.drop_table("delivery")
    op.drop_index(
        "uq_conversation_open_contact",
        table_name="conversation",
        postgresql_where=sa.text("status <> 'closed'"),
        sqlite_where=sa.text("status <> 'closed'"),
    )
    op.drop_index(op.f("ix_conversation_org_id"), table_name="conversation")
    op.drop_index("ix_conversation_inactivity_due_at", table_name="conversation")
    op.drop_index("ix_conversation_contact_id", table_name="conversation")
    op.drop_table("conversation")
    op.drop_index(op.f("ix_simulator_message_org_id"), table_name="simulator_message")
    op.drop_index("ix_simulator_message_bot_id_chat_id", table_name="simulator_message")
    op.drop_table("simulator_message")
    op.drop_index(op.f("ix_recovery_campaign_org_id"), table_name="recovery_campaign")
    op.drop_table("recovery_campaign")
    op.drop_table("media_upload")
    op.drop_index(op.f("ix_flow_org_id"), table_name="flow")
    op.drop_table("flow")
    op.drop_index(op.f("ix_contact_org_id"), table_name="contact")
    op.drop_table("contact")
    op.drop_index(op.f("ix_media_asset_org_id"), table_name="media_asset")
    op.drop_table("media_asset")
    op.drop_index(op.f("ix_inactivity_policy_org_id"), table_name="inactivity_policy")
    op.drop_table("inactivity_policy")
    op.drop_index(op.f("ix_bot_org_id"), table_name="bot")
    op.drop_table("bot")
    op.drop_index(op.f("ix_api_key_org_id"), table_name="api_key")
    op.drop_table("api_key")
    op.drop_table("activity_event")
    op.drop_index("ix_timer_run_at", table_name="timer")
    op.drop_table("timer")
    op.drop_table("organization")
