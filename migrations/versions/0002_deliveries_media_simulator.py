"""deliveries, media, simulator

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:14:37.279398
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
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
        "delivery",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=True),
        sa.Column("dedup_key", sa.String(length=160), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("channel_message_id", sa.String(length=128), nullable=True),
        sa.Column("platform_status", sa.String(length=16), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
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


def downgrade() -> None:
    op.drop_index(op.f("ix_delivery_org_id"), table_name="delivery")
    op.drop_index("ix_delivery_contact_id", table_name="delivery")
    op.drop_index("ix_delivery_bot_id_channel_message_id", table_name="delivery")
    op.drop_table("delivery")
    op.drop_index(op.f("ix_simulator_message_org_id"), table_name="simulator_message")
    op.drop_index("ix_simulator_message_bot_id_chat_id", table_name="simulator_message")
    op.drop_table("simulator_message")
    op.drop_table("media_upload")
    op.drop_index(op.f("ix_media_asset_org_id"), table_name="media_asset")
    op.drop_table("media_asset")
