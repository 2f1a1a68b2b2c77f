"""activity_event and conversation_event: partitioned on PostgreSQL (dropped whole past the
retention)

Revision ID: 0018
Revises: 0014
Create Date: 2026-12-01 03:00:00.000000

On PostgreSQL the table becomes `PARTITION BY RANGE (occurred_at)` with one partition per UTC
day (`activity_event_pYYYYMMDD`) and a DEFAULT partition, so that an insert never fails: the
rows are moved, in this migration's one transaction, into partitions made for every day that
has rows, plus today and the next days. The primary key gains `occurred_at` (a partitioned
table's unique keys must hold its partition key); a retry at the same instant is refused by
it, one at another instant by the activity store's look-up first.

`conversation_event` becomes `PARTITION BY RANGE (conversation_id)`: conversation ids are
issued in time order, so a range of them is a stretch of time, and the key that makes an
effect once-only, `(conversation_id, dedup_key)`, holds the partition key as it is (a time
column there would let one effect be logged twice across a boundary). The existing rows are
split by the day their conversation opened (`conversation_event_c<first id>`); the newest
range reaches ahead of the last id issued. The primary key becomes `(id, conversation_id)`.

SQLite keeps the plain tables.
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AHEAD_DAYS = 3
# The newest conversation_event range reaches this many ids past the last one at least.
MIN_RANGE = 100_000

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
    _partition_conversation_events()


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _unpartition_conversation_events()
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


_EVENT_COLUMNS = """
    id BIGINT NOT NULL DEFAULT nextval('conversation_event_id_seq'),
    org_id BIGINT NOT NULL,
    conversation_id BIGINT NOT NULL,
    kind VARCHAR(64) NOT NULL,
    reason VARCHAR(64),
    dedup_key VARCHAR(128) NOT NULL,
    detail JSON NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT uq_conversation_event_conversation_id_dedup_key UNIQUE (conversation_id, dedup_key),
    CONSTRAINT fk_conversation_event_conversation_id_conversation FOREIGN KEY (conversation_id)
        REFERENCES conversation (id) ON DELETE CASCADE,
    CONSTRAINT fk_conversation_event_org_id_organization FOREIGN KEY (org_id)
        REFERENCES organization (id) ON DELETE CASCADE
"""
_EVENT_ALL = "id, org_id, conversation_id, kind, reason, dedup_key, detail, created_at"
_EVENT_INDEXES = (
    "pk_conversation_event",
    "uq_conversation_event_conversation_id_dedup_key",
    "ix_conversation_event_conversation_id",
    "ix_conversation_event_org_id",
)


def _rename_aside(suffix: str) -> None:
    op.execute(f"ALTER TABLE conversation_event RENAME TO conversation_event_{suffix}")
    for index in _EVENT_INDEXES:
        op.execute(f"ALTER INDEX {index} RENAME TO {index}_{suffix}")
    # The id sequence outlives the old table.
    op.execute("ALTER SEQUENCE conversation_event_id_seq OWNED BY NONE")


def _finish(suffix: str) -> None:
    op.execute(
        "CREATE INDEX ix_conversation_event_conversation_id ON conversation_event (conversation_id)"
    )
    op.execute("CREATE INDEX ix_conversation_event_org_id ON conversation_event (org_id)")
    op.execute(
        f"INSERT INTO conversation_event ({_EVENT_ALL}) "
        f"SELECT {_EVENT_ALL} FROM conversation_event_{suffix}"
    )
    op.execute(f"DROP TABLE conversation_event_{suffix}")
    op.execute("ALTER SEQUENCE conversation_event_id_seq OWNED BY conversation_event.id")


def _id_ranges() -> list[tuple[int, int]]:
    """[first, next first) per day conversations opened, ids increasing; the last reaches
    `MIN_RANGE` (or a day's worth of ids, if more) past the last id issued."""
    bind = op.get_bind()
    firsts = [
        int(first)
        for (first,) in bind.execute(
            sa.text(
                "SELECT min(id) FROM conversation "
                "GROUP BY date_trunc('day', opened_at AT TIME ZONE 'UTC') ORDER BY 1"
            )
        )
    ]
    last = int(bind.scalar(sa.text("SELECT coalesce(max(id), 0) FROM conversation")) or 0)
    starts = [1, *(f for f in firsts if f > 1)]
    per_day = (last - starts[-1] + 1) if len(starts) > 1 else 0
    end = last + max(MIN_RANGE, per_day)
    return list(zip(starts, [*starts[1:], end], strict=True))


def _partition_conversation_events() -> None:
    _rename_aside("plain")
    op.execute(
        f"CREATE TABLE conversation_event ({_EVENT_COLUMNS}, "
        "CONSTRAINT pk_conversation_event PRIMARY KEY (id, conversation_id)"
        ") PARTITION BY RANGE (conversation_id)"
    )
    op.execute("CREATE TABLE conversation_event_default PARTITION OF conversation_event DEFAULT")
    now = datetime.now(UTC).isoformat()
    for first, end in _id_ranges():
        name = f"conversation_event_c{first}"
        op.execute(
            f"CREATE TABLE {name} PARTITION OF conversation_event "
            f"FOR VALUES FROM ({first}) TO ({end})"
        )
        op.execute(f"COMMENT ON TABLE {name} IS '{now}'")  # when made: its ids' pace
    _finish("plain")


def _unpartition_conversation_events() -> None:
    _rename_aside("partitioned")
    op.execute(
        f"CREATE TABLE conversation_event ({_EVENT_COLUMNS}, "
        "CONSTRAINT pk_conversation_event PRIMARY KEY (id))"
    )
    _finish("partitioned")
