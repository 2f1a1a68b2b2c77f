"""one voice per contact, durable inbound messages, operational exclusions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 09:00:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inbound_message",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("effects", sa.JSON(), nullable=False),
        sa.Column("occurred_at", _UTC, nullable=False),
        sa.Column("received_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot.id"], name=op.f("fk_inbound_message_bot_id_bot"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_inbound_message_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_message")),
        sa.UniqueConstraint("org_id", "event_id", name=op.f("uq_inbound_message_org_id_event_id")),
    )
    op.create_index(
        "ix_inbound_message_open",
        "inbound_message",
        ["bot_id", "user_id"],
        unique=False,
        postgresql_where=sa.text("status <> 'done'"),
        sqlite_where=sa.text("status <> 'done'"),
    )
    # Existing rows get the empty value; new rows get theirs from the application.
    empty_object, empty_list = sa.text("'{}'"), sa.text("'[]'")
    with op.batch_alter_table("bot") as bot:
        bot.add_column(sa.Column("recovery_threshold_s", sa.Integer(), nullable=True))
        bot.add_column(sa.Column("voice", sa.JSON(), nullable=False, server_default=empty_object))
    with op.batch_alter_table("organization") as org:
        org.add_column(sa.Column("voice", sa.JSON(), nullable=False, server_default=empty_object))
    with op.batch_alter_table("contact") as contact:
        contact.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        contact.add_column(sa.Column("language", sa.String(length=8), nullable=True))
        contact.add_column(sa.Column("last_proactive_at", _UTC, nullable=True))
        contact.add_column(sa.Column("last_proactive_group", sa.String(length=160), nullable=True))
    with op.batch_alter_table("delivery") as delivery:
        delivery.add_column(sa.Column("episode_id", sa.BigInteger(), nullable=True))
        delivery.add_column(sa.Column("after_id", sa.BigInteger(), nullable=True))
        delivery.add_column(sa.Column("proactive_group", sa.String(length=160), nullable=True))
    op.create_index(
        "ix_delivery_after_id",
        "delivery",
        ["after_id"],
        unique=False,
        postgresql_where=sa.text("after_id IS NOT NULL"),
        sqlite_where=sa.text("after_id IS NOT NULL"),
    )
    with op.batch_alter_table("recovery_campaign") as campaign:
        campaign.add_column(
            sa.Column("exclusions", sa.JSON(), nullable=False, server_default=empty_list)
        )
    _exclusions_leave_the_draft()


def _exclusions_leave_the_draft() -> None:
    """Exclusions become operational data of the campaign (effective at once), out of the
    draft and its versions."""
    conn = op.get_bind()
    table = sa.table(
        "recovery_campaign",
        sa.column("id", sa.BigInteger()),
        sa.column("draft", sa.JSON()),
        sa.column("exclusions", sa.JSON()),
    )
    for row in conn.execute(sa.select(table.c.id, table.c.draft)).all():
        draft = row.draft if isinstance(row.draft, dict) else json.loads(row.draft or "{}")
        users = [str(u) for u in draft.pop("exclusions", None) or []]
        conn.execute(
            table.update().where(table.c.id == row.id).values(exclusions=users, draft=draft)
        )


def downgrade() -> None:
    with op.batch_alter_table("recovery_campaign") as campaign:
        campaign.drop_column("exclusions")
    op.drop_index("ix_delivery_after_id", table_name="delivery")
    with op.batch_alter_table("delivery") as delivery:
        delivery.drop_column("proactive_group")
        delivery.drop_column("after_id")
        delivery.drop_column("episode_id")
    with op.batch_alter_table("contact") as contact:
        contact.drop_column("last_proactive_group")
        contact.drop_column("last_proactive_at")
        contact.drop_column("language")
        contact.drop_column("name")
    with op.batch_alter_table("organization") as org:
        org.drop_column("voice")
    with op.batch_alter_table("bot") as bot:
        bot.drop_column("voice")
        bot.drop_column("recovery_threshold_s")
    op.drop_index("ix_inbound_message_open", table_name="inbound_message")
    op.drop_table("inbound_message")
