"""delivery: partitioned on PostgreSQL by ranges of its id; its once-only key in
`delivery_key`

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 06:00:00.000000

On PostgreSQL `delivery` becomes `PARTITION BY RANGE (id)` (`delivery_d<first id>`, and a
DEFAULT partition so that an insert never fails), primary key `(id)` as before: every
lookup by id reads one partition. Delivery ids are issued in time order, so a range is a
stretch of time: the existing rows are split by the week they were scheduled, and the newest
range reaches ahead of the last id issued. A partitioned table's unique keys must hold its
partition key, so the once-only key `(org_id, dedup_key)` moves to the unpartitioned
`delivery_key (org_id, dedup_key) -> delivery_id`, filled here from the existing rows.

The conversion runs in this migration's one transaction (the table is renamed aside, the
partitioned one made, the rows copied, the old table dropped): it takes as long as rewriting
the table, which stays locked meanwhile. SQLite keeps the plain table and its unique key;
`delivery_key` is made there too (empty: the models are the same on both databases).
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The newest range reaches this many ids past the last one at least.
MIN_RANGE = 100_000

_COLUMNS = """
    id BIGINT NOT NULL DEFAULT nextval('delivery_id_seq'),
    org_id BIGINT NOT NULL,
    bot_id BIGINT NOT NULL,
    contact_id BIGINT NOT NULL,
    conversation_id BIGINT,
    dedup_key VARCHAR(160) NOT NULL,
    purpose VARCHAR(32) NOT NULL,
    guard_seq BIGINT,
    status VARCHAR(16) NOT NULL,
    reason VARCHAR(64),
    message JSON NOT NULL,
    channel_message_id VARCHAR(128),
    platform_status VARCHAR(16),
    error VARCHAR(500),
    attempts INTEGER NOT NULL,
    delete_after_s INTEGER,
    delete_status VARCHAR(64),
    scheduled_at TIMESTAMP WITH TIME ZONE NOT NULL,
    sending_at TIMESTAMP WITH TIME ZONE,
    sent_at TIMESTAMP WITH TIME ZONE,
    finished_at TIMESTAMP WITH TIME ZONE,
    deleted_at TIMESTAMP WITH TIME ZONE,
    episode_id BIGINT,
    after_id BIGINT,
    proactive_group VARCHAR(160),
    requested_at TIMESTAMP WITH TIME ZONE,
    retry_ambiguous BOOLEAN DEFAULT false NOT NULL,
    ambiguous_at TIMESTAMP WITH TIME ZONE,
    valid_until TIMESTAMP WITH TIME ZONE,
    step INTEGER,
    step_lead BOOLEAN DEFAULT false NOT NULL,
    episode_started_at TIMESTAMP WITH TIME ZONE,
    episode_version INTEGER,
    episode_holdout BOOLEAN,
    CONSTRAINT fk_delivery_bot_id_bot FOREIGN KEY (bot_id)
        REFERENCES bot (id) ON DELETE CASCADE,
    CONSTRAINT fk_delivery_contact_id_contact FOREIGN KEY (contact_id)
        REFERENCES contact (id) ON DELETE CASCADE,
    CONSTRAINT fk_delivery_org_id_organization FOREIGN KEY (org_id)
        REFERENCES organization (id) ON DELETE CASCADE
"""
_ALL = (
    "id, org_id, bot_id, contact_id, conversation_id, dedup_key, purpose, guard_seq, status, "
    "reason, message, channel_message_id, platform_status, error, attempts, delete_after_s, "
    "delete_status, scheduled_at, sending_at, sent_at, finished_at, deleted_at, episode_id, "
    "after_id, proactive_group, requested_at, retry_ambiguous, ambiguous_at, valid_until, "
    "step, step_lead, episode_started_at, episode_version, episode_holdout"
)
_INDEXES = {
    "ix_delivery_after_id": "(after_id) WHERE after_id IS NOT NULL",
    "ix_delivery_bot_id_channel_message_id": "(bot_id, channel_message_id)",
    "ix_delivery_contact_id": "(contact_id)",
    "ix_delivery_org_id": "(org_id)",
    "ix_delivery_pending": "(id) WHERE status IN ('scheduled', 'sending')",
    "ix_delivery_step_lead": (
        "(bot_id, episode_started_at) INCLUDE (org_id, episode_version, episode_holdout, "
        "step, status, reason, platform_status) WHERE step_lead"
    ),
}


def upgrade() -> None:
    op.create_table(
        "delivery_key",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("dedup_key", sa.String(length=160), nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_delivery_key_org_id_organization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("org_id", "dedup_key", name=op.f("pk_delivery_key")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    _rename_aside("plain", ["pk_delivery", "uq_delivery_org_id_dedup_key", *_INDEXES])
    op.execute(
        f"CREATE TABLE delivery ({_COLUMNS}, CONSTRAINT pk_delivery PRIMARY KEY (id)) "
        "PARTITION BY RANGE (id)"
    )
    op.execute("CREATE TABLE delivery_default PARTITION OF delivery DEFAULT")
    now = datetime.now(UTC).isoformat()
    for first, end in _id_ranges():
        name = f"delivery_d{first}"
        op.execute(
            f"CREATE TABLE {name} PARTITION OF delivery FOR VALUES FROM ({first}) TO ({end})"
        )
        op.execute(f"COMMENT ON TABLE {name} IS '{now}'")  # when made: its ids' pace
    op.execute(
        "INSERT INTO delivery_key (org_id, dedup_key, delivery_id) "
        "SELECT org_id, dedup_key, id FROM delivery_plain"
    )
    _finish("plain")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _rename_aside("partitioned", ["pk_delivery", *_INDEXES])
        op.execute(
            f"CREATE TABLE delivery ({_COLUMNS}, CONSTRAINT pk_delivery PRIMARY KEY (id), "
            "CONSTRAINT uq_delivery_org_id_dedup_key UNIQUE (org_id, dedup_key))"
        )
        _finish("partitioned")
    op.drop_table("delivery_key")


def _rename_aside(suffix: str, indexes: list[str]) -> None:
    op.execute(f"ALTER TABLE delivery RENAME TO delivery_{suffix}")
    for index in indexes:
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_{suffix}")
    # The id sequence outlives the old table.
    op.execute("ALTER SEQUENCE delivery_id_seq OWNED BY NONE")


def _finish(suffix: str) -> None:
    for name, definition in _INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON delivery {definition}")
    # Of two rows under one key (none should be), the first is kept.
    op.execute(
        f"INSERT INTO delivery ({_ALL}) SELECT {_ALL} FROM delivery_{suffix} ORDER BY id"
        + (" ON CONFLICT DO NOTHING" if suffix == "partitioned" else "")
    )
    op.execute(f"DROP TABLE delivery_{suffix}")
    op.execute("ALTER SEQUENCE delivery_id_seq OWNED BY delivery.id")


def _id_ranges() -> list[tuple[int, int]]:
    """[first, next first) per week deliveries were scheduled, ids increasing; the last
    reaches `MIN_RANGE` (or a week's worth of ids, if more) past the last id issued."""
    bind = op.get_bind()
    firsts = [
        int(first)
        for (first,) in bind.execute(
            sa.text(
                "SELECT min(id) FROM delivery_plain "
                "GROUP BY date_trunc('week', scheduled_at AT TIME ZONE 'UTC') ORDER BY 1"
            )
        )
    ]
    last = int(bind.scalar(sa.text("SELECT last_value FROM delivery_id_seq")) or 0)
    starts = [1, *(f for f in firsts if f > 1)]
    per_week = (last - starts[-1] + 1) if len(starts) > 1 else 0
    end = last + max(MIN_RANGE, per_week)
    return list(zip(starts, [*starts[1:], end], strict=True))
