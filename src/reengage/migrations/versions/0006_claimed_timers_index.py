"""claimed timers: a partial index for counting the claims in flight

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 15:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CLAIMED = sa.text("attempts > 0")


def upgrade() -> None:
    op.create_index(
        "ix_timer_claimed",
        "timer",
        ["run_at"],
        postgresql_where=_CLAIMED,
        sqlite_where=_CLAIMED,
    )


def downgrade() -> None:
    op.drop_index("ix_timer_claimed", table_name="timer")
