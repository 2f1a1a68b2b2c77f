"""episodes an operator sent to themselves are marked, and left out of the results

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 06:00:00.000000

"Send this campaign to me now" starts a real episode for the operator's own contact; the
campaign's funnel and lift must not count it. `test_send` marks such episodes (existing rows:
false); their deliveries are written with `step_lead` false, so the funnel's per-step counts,
read from the deliveries alone, leave them out too.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_INCLUDE = [
    "org_id",
    "version",
    "holdout",
    "last_step",
    "status",
    "end_reason",
    "returned_at",
    "converted_at",
]


def _results_index(include: list[str]) -> None:
    """The results' index, its counted columns included (an index-only scan on PostgreSQL)."""
    op.drop_index("ix_recovery_episode_results", table_name="recovery_episode")
    op.create_index(
        "ix_recovery_episode_results",
        "recovery_episode",
        ["campaign_id", "started_at"],
        postgresql_include=include,
    )


def upgrade() -> None:
    with op.batch_alter_table("recovery_episode") as batch:
        batch.add_column(
            sa.Column("test_send", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    _results_index([*_INCLUDE, "test_send"])


def downgrade() -> None:
    _results_index(_INCLUDE)
    with op.batch_alter_table("recovery_episode") as batch:
        batch.drop_column("test_send")
