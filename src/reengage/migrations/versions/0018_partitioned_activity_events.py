"""activity_event: partitioned by day on PostgreSQL (dropped whole past the retention)

Revision ID: 0018
Revises: 0013
Create Date: 2026-12-01 03:00:00.000000

On PostgreSQL the table becomes `PARTITION BY RANGE (occurred_at)` with one partition per UTC
day (`activity_event_pYYYYMMDD`) and a DEFAULT partition, so that an insert never fails: the
rows are moved, in this migration's one transaction, into partitions made for every day that
has rows, plus today and the next days. The primary key gains `occurred_at` (a partitioned
table's unique keys must hold its partition key); a retried event carries its own instant
(a platform's timestamp, or the `occurred_at` the client sent), so it is still refused.
SQLite keeps the plain table.
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AHEAD_DAYS = 3

_COLUMNS = """
    org_id BIGINT NOT NULL,
    event_id VARCHAR(128) NOT NULL,
    type VARCHAR(32) NOT NULL,
    bot_id BIGINT NOT NULL,
    user_id VARCHAR(128) NOT NULL,
    occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT fk_activity_event_org_id_organization FOREIGN KEY (org_id)
        REFERENCES organization (id) ON DELETE CASCADE
"""
_ALL = "org_id, event_id, type, bot_id, user_id, occurred_at, received_at"


def _day_partition(day: date) -> str:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    return (
        f"CREATE TABLE activity_event_p{day:%Y%m%d} PARTITION OF activity_event "
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE activity_event RENAME TO activity_event_plain")
    op.execute("ALTER INDEX pk_activity_event RENAME TO pk_activity_event_plain")
    op.execute(
        "ALTER TABLE activity_event_plain RENAME CONSTRAINT "
        "fk_activity_event_org_id_organization TO fk_activity_event_plain_org_id"
    )
    op.execute(
        f"CREATE TABLE activity_event ({_COLUMNS}, "
        "CONSTRAINT pk_activity_event PRIMARY KEY (org_id, event_id, occurred_at)"
        ") PARTITION BY RANGE (occurred_at)"
    )
    op.execute("CREATE TABLE activity_event_default PARTITION OF activity_event DEFAULT")
    today = datetime.now(UTC).date()
    first = bind.scalar(
        sa.text("SELECT min(occurred_at) FROM activity_event_plain WHERE occurred_at < :today"),
        {"today": datetime(today.year, today.month, today.day, tzinfo=UTC)},
    )
    days = {today + timedelta(days=n) for n in range(AHEAD_DAYS + 1)}
    if first is not None:
        rows = bind.execute(
            sa.text(
                "SELECT DISTINCT date_trunc('day', occurred_at AT TIME ZONE 'UTC')::date "
                "FROM activity_event_plain"
            )
        )
        days |= {day for (day,) in rows if day < today}
    for day in sorted(days):
        op.execute(_day_partition(day))
    op.execute(f"INSERT INTO activity_event ({_ALL}) SELECT {_ALL} FROM activity_event_plain")
    op.execute("DROP TABLE activity_event_plain")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE activity_event RENAME TO activity_event_partitioned")
    op.execute("ALTER INDEX pk_activity_event RENAME TO pk_activity_event_partitioned")
    op.execute(
        "ALTER TABLE activity_event_partitioned RENAME CONSTRAINT "
        "fk_activity_event_org_id_organization TO fk_activity_event_partitioned_org_id"
    )
    op.execute(
        f"CREATE TABLE activity_event ({_COLUMNS}, "
        "CONSTRAINT pk_activity_event PRIMARY KEY (org_id, event_id))"
    )
    # The plain key is narrower: of one event recorded at two instants, the first is kept.
    op.execute(
        f"INSERT INTO activity_event ({_ALL}) "
        f"SELECT DISTINCT ON (org_id, event_id) {_ALL} FROM activity_event_partitioned "
        "ORDER BY org_id, event_id, received_at"
    )
    op.execute("DROP TABLE activity_event_partitioned")
