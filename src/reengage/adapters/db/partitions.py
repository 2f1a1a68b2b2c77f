"""Partitions of the append-only tables, and their retention.

PostgreSQL: `activity_event` is `PARTITION BY RANGE (occurred_at)`, one partition per UTC day
named `<table>_pYYYYMMDD`, plus a DEFAULT partition (migration 0018). Upcoming days are
created ahead; days wholly older than the retention are detached and dropped, never deleted
row by row. The DEFAULT partition only catches what no day partition covers (events older
than the oldest kept day, or past the days made ahead); its old rows are deleted in bounded
batches. `conversation_event` and `delivery` are partitioned by ranges of ids
(`id_partitions`; `delivery` since 0019, its once-only keys in `delivery_key`). SQLite has no
partitions: there the prune deletes rows older than the cutoff in bounded batches (of
deliveries, the settled ones).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, bindparam, text

from reengage.adapters.db import id_partitions
from reengage.adapters.db.types import UTCDateTime

# table -> its partition key (a UTC instant); what `prune` manages by day.
PARTITIONED = {"activity_event": "occurred_at"}
# SQLite (no partitions), and the DEFAULT partitions: table -> the instant its rows are
# deleted by.
DELETED_BY = {**PARTITIONED, "conversation_event": "created_at", "delivery": "scheduled_at"}
# More than old: a delivery goes once settled (not pending) before the cutoff too.
_ALSO = {
    "delivery": f"NOT ({id_partitions.PENDING}) AND coalesce(finished_at, scheduled_at) < :cutoff"
}
AHEAD_DAYS = 3
BATCH = 5000
# DDL waits this long at most for the table's lock (a busy table is pruned next time).
LOCK_TIMEOUT = "2s"
# Only one process prunes at a time (several schedulers may run).
_LOCK_KEY = 0x5245454E  # "REEN"
_DAY = re.compile(r"_p(\d{8})$")


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What a prune did (or, dry, would do)."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    deleted: dict[str, int] = field(default_factory=dict)
    skipped: bool = False  # another process held the prune lock


def is_partition(name: str | None, type_: str, *_: object) -> bool:
    """True for a partition of a managed table (Alembic's `include_name` negated: the
    partitions are made at run time, not described by the models)."""
    if type_ != "table" or name is None:
        return False
    return id_partitions.is_range_partition(name) or any(
        name == f"{table}_default" or (name.startswith(f"{table}_p") and _DAY.search(name))
        for table in DELETED_BY
    )


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's `include_name`: everything but the partitions."""
    return not is_partition(name, type_)


def include_object_for(dialect: str) -> Callable[..., bool]:
    """Alembic's `include_object` on `dialect`: the models' objects marked for other
    databases only (`info={"dialects": (...)}`, such as the delivery's unique key, SQLite's
    alone) are not compared."""

    def include_object(
        obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        dialects = getattr(obj, "info", {}).get("dialects")
        return reflected or dialects is None or dialect in dialects

    return include_object


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def _start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def day_partitions(conn: Connection, table: str) -> dict[date, str]:
    """The table's day partitions (PostgreSQL), by the day each covers."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:table AS regclass)"
        ),
        {"table": table},
    )
    found: dict[date, str] = {}
    for (name,) in rows:
        if (match := _DAY.search(name)) is not None:
            found[datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date()] = name
    return found


def is_partitioned(conn: Connection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return bool(
        conn.scalar(
            text(
                "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = CAST(:t AS regclass)"
            ),
            {"t": table},
        )
    )


def prune(
    conn: Connection, now: datetime, retention: timedelta, *, dry_run: bool = False
) -> PruneReport:
    """Create the coming days' partitions and drop (or, on SQLite, delete) what is older than
    `now - retention`; in the caller's transaction (commit it). Dry: change nothing, say what
    would change."""
    if conn.dialect.name == "postgresql":
        if not conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK_KEY}):
            return PruneReport(skipped=True)
        conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    cutoff = now - retention
    report = PruneReport()
    for table, key in PARTITIONED.items():
        if is_partitioned(conn, table):
            _prune_partitions(conn, table, now, cutoff, report, dry_run=dry_run)
        deleted = _delete_before(conn, _plain_part(conn, table), key, cutoff, dry_run=dry_run)
        if deleted:
            report.deleted[table] = deleted
    for table in id_partitions.RANGED:
        partitioned = is_partitioned(conn, table)
        if partitioned:
            report.created.extend(id_partitions.make_ahead(conn, table, now, dry_run=dry_run))
            dropped, forgotten = id_partitions.drop_quiet(conn, table, cutoff, dry_run=dry_run)
            report.dropped.extend(dropped)
            for other, rows in forgotten.items():
                report.deleted[other] = report.deleted.get(other, 0) + rows
        # The delivery keys of the rows deleted from a DEFAULT partition go with them.
        keys = table == "delivery" and partitioned
        deleted = _delete_before(
            conn,
            _plain_part(conn, table),
            DELETED_BY[table],
            cutoff,
            dry_run=dry_run,
            also=_ALSO.get(table),
            keys=keys,
        )
        if deleted:
            report.deleted[table] = deleted
    return report


def _plain_part(conn: Connection, table: str) -> str:
    """Where rows are deleted one batch at a time: the DEFAULT partition, or the table."""
    return f"{table}_default" if is_partitioned(conn, table) else table


def _prune_partitions(
    conn: Connection,
    table: str,
    now: datetime,
    cutoff: datetime,
    report: PruneReport,
    *,
    dry_run: bool,
) -> None:
    existing = day_partitions(conn, table)
    today = now.astimezone(UTC).date()
    key = PARTITIONED[table]
    for n in range(AHEAD_DAYS + 1):
        day = today + timedelta(days=n)
        if day in existing:
            continue
        name = partition_name(table, day)
        report.created.append(name)
        if not dry_run:
            _create(conn, table, key, name, day)
    for day, name in sorted(existing.items()):
        if _start(day) + timedelta(days=1) <= cutoff:
            report.dropped.append(name)
            if not dry_run:
                conn.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION "{name}"'))
                conn.execute(text(f'DROP TABLE "{name}"'))


def _create(conn: Connection, table: str, key: str, name: str, day: date) -> None:
    start, end = _start(day), _start(day) + timedelta(days=1)
    bounds = {"start": start, "end": end}
    # Rows the DEFAULT partition caught for that day move into it (creating the partition
    # with them still there would fail).
    default = f"{table}_default"
    stray = f"{key} >= :start AND {key} < :end"
    moving = conn.scalar(text(f'SELECT count(*) FROM "{default}" WHERE {stray}'), bounds)
    if moving:
        conn.execute(
            text(
                f'CREATE TEMP TABLE "{name}_moving" ON COMMIT DROP AS '
                f'SELECT * FROM "{default}" WHERE {stray}'
            ),
            bounds,
        )
        conn.execute(text(f'DELETE FROM "{default}" WHERE {stray}'), bounds)
    conn.execute(
        text(
            f'CREATE TABLE "{name}" PARTITION OF "{table}" '
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    )
    if moving:
        conn.execute(text(f'INSERT INTO "{table}" SELECT * FROM "{name}_moving"'))


def _delete_before(
    conn: Connection,
    table: str,
    key: str,
    cutoff: datetime,
    *,
    dry_run: bool,
    also: str | None = None,
    keys: bool = False,
) -> int:
    """Delete the rows older than `cutoff` (and meeting `also`), `BATCH` at a time (each
    batch a short statement: no long lock, no huge undo); `keys`: their `delivery_key` rows
    in the same statement. Dry: count them."""
    params = {"cutoff": cutoff}
    typed = bindparam("cutoff", type_=UTCDateTime())
    old = f"{key} < :cutoff" + (f" AND {also}" if also else "")
    if dry_run:
        count = text(f'SELECT count(*) FROM "{table}" WHERE {old}').bindparams(typed)
        return int(conn.scalar(count, params) or 0)
    row_id = "ctid" if conn.dialect.name == "postgresql" else "rowid"
    delete = (
        f'DELETE FROM "{table}" WHERE {row_id} IN (SELECT {row_id} FROM "{table}" '
        f"WHERE {old} LIMIT {BATCH})"
    )
    if keys:
        delete = (
            f"WITH gone AS ({delete} RETURNING org_id, dedup_key, id), "
            "forgot AS (DELETE FROM delivery_key k USING gone WHERE k.org_id = gone.org_id "
            "AND k.dedup_key = gone.dedup_key AND k.delivery_id = gone.id) "
            "SELECT count(*) FROM gone"
        )
    total = 0
    while True:
        result = conn.execute(text(delete).bindparams(typed), params)
        done = int(result.scalar() or 0) if keys else result.rowcount
        total += done
        if done < BATCH:
            return total
