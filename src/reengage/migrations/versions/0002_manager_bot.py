"""manager bot: admin invites and admins

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:00:00.000000
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
        "admin_invite",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_admin_invite_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_invite")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_admin_invite_code_hash")),
    )
    op.create_index(op.f("ix_admin_invite_org_id"), "admin_invite", ["org_id"], unique=False)
    op.create_table(
        "manager_admin",
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_manager_admin_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("telegram_user_id", name=op.f("pk_manager_admin")),
    )
    op.create_index(op.f("ix_manager_admin_org_id"), "manager_admin", ["org_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_manager_admin_org_id"), table_name="manager_admin")
    op.drop_table("manager_admin")
    op.drop_index(op.f("ix_admin_invite_org_id"), table_name="admin_invite")
    op.drop_table("admin_invite")
