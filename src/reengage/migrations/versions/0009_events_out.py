"""events out: subscriptions, events, their deliveries and attempts

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 21:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)
_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        "event_subscription",
        sa.Column("id", _BIG_PK, primary_key=True),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("description", sa.String(200), nullable=True),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("previous_secret", sa.LargeBinary(), nullable=True),
        sa.Column("previous_until", _AT, nullable=True),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(64), nullable=True),
        sa.Column("failing_since", _AT, nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("updated_at", _AT, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name="fk_event_subscription_org_id_organization",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_event_subscription"),
    )
    op.create_index("ix_event_subscription_org_id", "event_subscription", ["org_id"])
    op.create_table(
        "outbound_event",
        sa.Column("id", _BIG_PK, primary_key=True),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(48), nullable=False),
        sa.Column("dedup_key", sa.String(160), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name="fk_outbound_event_org_id_organization",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbound_event"),
        sa.UniqueConstraint("org_id", "dedup_key", name="uq_outbound_event_org_id_dedup_key"),
    )
    op.create_index("ix_outbound_event_org_id", "outbound_event", ["org_id"])
    op.create_table(
        "event_delivery",
        sa.Column("id", _BIG_PK, primary_key=True),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("ordering_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", _AT, nullable=False),
        sa.Column("retry_from", _AT, nullable=False),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("finished_at", _AT, nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name="fk_event_delivery_org_id_organization",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["outbound_event.id"],
            name="fk_event_delivery_event_id_outbound_event",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["event_subscription.id"],
            name="fk_event_delivery_subscription_id_event_subscription",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_event_delivery"),
        sa.UniqueConstraint(
            "event_id", "subscription_id", name="uq_event_delivery_event_id_subscription_id"
        ),
    )
    op.create_index("ix_event_delivery_org_id", "event_delivery", ["org_id"])
    op.create_index("ix_event_delivery_event_id", "event_delivery", ["event_id"])
    op.create_index(
        "ix_event_delivery_pending",
        "event_delivery",
        ["subscription_id", "ordering_key", "id"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.create_table(
        "event_attempt",
        sa.Column("id", _BIG_PK, primary_key=True),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(300), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name="fk_event_attempt_org_id_organization",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["event_delivery.id"],
            name="fk_event_attempt_delivery_id_event_delivery",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_event_attempt"),
    )
    op.create_index("ix_event_attempt_org_id", "event_attempt", ["org_id"])
    op.create_index("ix_event_attempt_delivery_id", "event_attempt", ["delivery_id"])


def downgrade() -> None:
    for table in ("event_attempt", "event_delivery", "outbound_event", "event_subscription"):
        op.drop_table(table)
