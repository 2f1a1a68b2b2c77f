"""pending deliveries: a partial index for the sweep and the rebuild

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("status IN ('scheduled', 'sending')")


def upgrade() -> None:
    op.create_index(
        "ix_delivery_pending",
        "delivery",
        ["id"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_pending", table_name="delivery")
