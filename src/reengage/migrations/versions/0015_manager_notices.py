"""events out: when a subscription was disabled, the manager bot's notices to admins, and
an event's payload kept as its `data` (the envelope is built when it is sent)

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-01 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)
_PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("event_subscription") as batch:
        batch.add_column(sa.Column("disabled_at", _AT, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE outbound_event SET payload = (payload::jsonb -> 'data')::json "
            "WHERE payload::jsonb ? 'data' AND payload::jsonb ? 'version'"
        )
    else:
        op.execute(
            "UPDATE outbound_event SET payload = json_extract(payload, '$.data') "
            "WHERE json_type(payload, '$.data') = 'object' "
            "AND json_type(payload, '$.version') IS NOT NULL"
        )
    op.create_table(
        "manager_notice",
        sa.Column("id", _BIG_PK, primary_key=True),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("dedup_key", sa.String(160), nullable=False),
        sa.Column("text", sa.String(4096), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", _AT, nullable=False),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("sent_at", _AT, nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name="fk_manager_notice_org_id_organization",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_manager_notice"),
        sa.UniqueConstraint(
            "telegram_user_id", "dedup_key", name="uq_manager_notice_telegram_user_id_dedup_key"
        ),
    )
    op.create_index("ix_manager_notice_org_id", "manager_notice", ["org_id"])
    op.create_index(
        "ix_manager_notice_pending",
        "manager_notice",
        ["id"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_manager_notice_pending", table_name="manager_notice")
    op.drop_index("ix_manager_notice_org_id", table_name="manager_notice")
    op.drop_table("manager_notice")
    with op.batch_alter_table("event_subscription") as batch:
        batch.drop_column("disabled_at")
