"""bots can be disabled and deleted (soft); media bytes move to a file store

Revision ID: 0014
Revises: 0015
Create Date: 2026-12-01 03:00:00.000000

A deleted bot keeps its row (its history and results stay readable to the organization's
reports) with `deleted_at` set and its credentials wiped. Media assets gain `storage_key`,
the file's name in the media store; `content` becomes nullable: rows written before this
revision keep their bytes there and are still read from it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bot") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("media_asset") as batch:
        batch.add_column(sa.Column("storage_key", sa.String(length=128), nullable=True))
        batch.alter_column("content", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("media_asset") as batch:
        batch.alter_column("content", existing_type=sa.LargeBinary(), nullable=False)
        batch.drop_column("storage_key")
    with op.batch_alter_table("bot") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("disabled_at")
