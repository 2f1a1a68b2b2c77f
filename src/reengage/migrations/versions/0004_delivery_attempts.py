"""delivery attempts: in-flight mark, ambiguity policy, validity; single-use buttons

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("delivery") as delivery:
        delivery.add_column(sa.Column("requested_at", _UTC, nullable=True))
        delivery.add_column(
            sa.Column("retry_ambiguous", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        delivery.add_column(sa.Column("ambiguous_at", _UTC, nullable=True))
        delivery.add_column(sa.Column("valid_until", _UTC, nullable=True))
    op.create_table(
        "used_button",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_used_button")),
    )
    op.create_index("ix_used_button_expires_at", "used_button", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_used_button_expires_at", table_name="used_button")
    op.drop_table("used_button")
    with op.batch_alter_table("delivery") as delivery:
        delivery.drop_column("valid_until")
        delivery.drop_column("ambiguous_at")
        delivery.drop_column("retry_ambiguous")
        delivery.drop_column("requested_at")
