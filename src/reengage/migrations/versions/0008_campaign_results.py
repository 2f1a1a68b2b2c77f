"""campaign results: attribution on episodes, the step of a delivery, indexes for the funnel

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEAD = sa.text("step_lead")
_EPISODE_INCLUDE = [
    "org_id",
    "version",
    "holdout",
    "last_step",
    "status",
    "end_reason",
    "returned_at",
    "converted_at",
]
_EPISODE_COLUMNS = ("last_step", "return_until", "convert_until", "returned_at", "converted_at")


def upgrade() -> None:
    with op.batch_alter_table("recovery_episode") as batch:
        batch.add_column(sa.Column("last_step", sa.Integer(), nullable=True))
        for name in _EPISODE_COLUMNS[1:]:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("step", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("step_lead", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("episode_started_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("episode_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("episode_holdout", sa.Boolean(), nullable=True))
    op.create_index(
        "ix_recovery_episode_results",
        "recovery_episode",
        ["campaign_id", "started_at"],
        postgresql_include=_EPISODE_INCLUDE,
    )
    op.create_index(
        "ix_delivery_step_lead",
        "delivery",
        ["bot_id", "episode_started_at"],
        postgresql_where=_LEAD,
        sqlite_where=_LEAD,
        postgresql_include=[
            "org_id",
            "episode_version",
            "episode_holdout",
            "step",
            "status",
            "reason",
            "platform_status",
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_step_lead", table_name="delivery")
    op.drop_index("ix_recovery_episode_results", table_name="recovery_episode")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("episode_holdout")
        batch.drop_column("episode_version")
        batch.drop_column("episode_started_at")
        batch.drop_column("step_lead")
        batch.drop_column("step")
    with op.batch_alter_table("recovery_episode") as batch:
        for name in reversed(_EPISODE_COLUMNS):
            batch.drop_column(name)
