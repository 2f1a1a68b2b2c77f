"""web console: users per organization, their sessions and invitations; the audit log

Revision ID: 0012
Revises: 0009
Create Date: 2026-11-30 21:30:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _org(table: str) -> list[Any]:
    return [
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f(f"fk_{table}_org_id_organization"),
            ondelete="CASCADE",
        ),
    ]


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "console_user",
        _id(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_user")),
        *_org("console_user"),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        _at("created_at"),
        _at("disabled_at", nullable=True),
        sa.UniqueConstraint("email", name=op.f("uq_console_user_email")),
    )
    op.create_index("ix_console_user_org_id", "console_user", ["org_id"])
    op.create_table(
        "console_session",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_console_session")),
        *_org("console_session"),
        sa.Column(
            "user_id",
            sa.BigInteger(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["console_user.id"],
            name=op.f("fk_console_session_user_id_console_user"),
            ondelete="CASCADE",
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        _at("created_at"),
        _at("expires_at"),
    )
    op.create_index("ix_console_session_org_id", "console_session", ["org_id"])
    op.create_index("ix_console_session_user_id", "console_session", ["user_id"])
    op.create_index("ix_console_session_expires_at", "console_session", ["expires_at"])
    op.create_table(
        "console_invite",
        _id(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_invite")),
        *_org("console_invite"),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        _at("created_at"),
        _at("expires_at"),
        _at("used_at", nullable=True),
        sa.Column("used_by", sa.BigInteger(), nullable=True),
        sa.UniqueConstraint("token_hash", name=op.f("uq_console_invite_token_hash")),
    )
    op.create_index("ix_console_invite_org_id", "console_invite", ["org_id"])
    op.create_table(
        "audit_entry",
        _id(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entry")),
        *_org("audit_entry"),
        _at("at"),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_entry_org_id_at", "audit_entry", ["org_id", "at"])


def downgrade() -> None:
    op.drop_table("audit_entry")
    op.drop_table("console_invite")
    op.drop_table("console_session")
    op.drop_table("console_user")
