"""Ranges of an id issued in time order as partitions: `conversation_event` by
`conversation_id`, `delivery` by its own `id`.

Such ids are issued in time order, so a range of them is a stretch of time. Each range
partition (`<table>_<tag><first id>`) carries in its comment when it was made; the pace at
which the newest range fills sizes the next one (`span`'s worth of ids, at least
`MIN_RANGE`), made once the newest is half full. A range goes whole once nothing in it was
active since the cutoff (the table's `quiet` test); what must go with it (the delivery's
once-only keys) is forgotten first. Ids past every range land in the DEFAULT partition,
moved into their range when it is made.

- `conversation_event`: one day of conversation ids a range; the log's once-only key
  `(conversation_id, dedup_key)` holds the partition key unchanged. A range goes once every
  conversation in it was last active (opened, written, closed, due) before the cutoff.
- `delivery`: a week of delivery ids a range (the lookups that are not by id, such as a
  platform's status by message id or a campaign's results, read every partition: a week
  keeps them to about 14 for 90 days). Its once-only key `(org_id, dedup_key)` lives in the
  unpartitioned `delivery_key` table. A range goes once none of its deliveries is pending
  (scheduled or sending) and every one was scheduled, sent and finished before the cutoff;
  its keys are deleted first, in batches.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

MIN_RANGE = 100_000
BATCH = 5000
_BOUNDS = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True, slots=True)
class Range:
    name: str
    first: int
    end: int  # exclusive
    made_at: datetime | None


@dataclass(frozen=True, slots=True)
class IdRanged:
    """How a table is split by ranges of an id issued in time order."""

    key: str  # its partition key
    owner: str  # the table that issues those ids (the table itself for its own id)
    tag: str  # its range partitions are `<table>_<tag><first id>`
    span: timedelta  # the time a range's ids cover, at the pace of the newest range
    # True when nothing in the range was active since the cutoff: it may go.
    quiet: Callable[[Connection, Range, datetime], bool]
    # What goes with a range, before it (dry: counted, not deleted): (table, rows).
    forget: Callable[[Connection, Range, bool], tuple[str, int]] | None = None


def _conversations_quiet(conn: Connection, part: Range, cutoff: datetime) -> bool:
    # Cheap first: the range's newest conversation opened before the cutoff (one index probe).
    newest = conn.scalar(
        text('SELECT opened_at FROM "conversation" WHERE id < :end ORDER BY id DESC LIMIT 1'),
        {"end": part.end},
    )
    if newest is not None and newest >= cutoff:
        return False
    # Then every one of them: closed, written to and due before it.
    lively = conn.scalar(
        text(
            'SELECT 1 FROM "conversation" WHERE id >= :first AND id < :end AND greatest('
            "opened_at, closed_at, last_activity_at, inactivity_due_at) >= :cutoff LIMIT 1"
        ),
        {"first": part.first, "end": part.end, "cutoff": cutoff},
    )
    return lively is None


# A delivery not yet settled: the sweep's partial index (`ix_delivery_pending`) holds them.
PENDING = "status IN ('scheduled', 'sending')"


def _deliveries_quiet(conn: Connection, part: Range, cutoff: datetime) -> bool:
    bounds = {"first": part.first, "end": part.end, "cutoff": cutoff}
    in_range = "id >= :first AND id < :end"
    # Cheap first: the range's newest delivery was scheduled before the cutoff (one probe).
    newest = conn.scalar(
        text(f"SELECT scheduled_at FROM delivery WHERE {in_range} ORDER BY id DESC LIMIT 1"),
        bounds,
    )
    if newest is not None and newest >= cutoff:
        return False
    # None of them pending (the partial index), then every one settled before the cutoff.
    if conn.scalar(text(f"SELECT 1 FROM delivery WHERE {in_range} AND {PENDING} LIMIT 1"), bounds):
        return False
    lively = conn.scalar(
        text(
            f"SELECT 1 FROM delivery WHERE {in_range} AND greatest(scheduled_at, sending_at, "
            "sent_at, finished_at, deleted_at) >= :cutoff LIMIT 1"
        ),
        bounds,
    )
    return lively is None


def _forget_delivery_keys(conn: Connection, part: Range, dry_run: bool) -> tuple[str, int]:
    """Delete the once-only keys of the range's deliveries, `BATCH` deliveries at a time (by
    the key table's primary key: no other index on it); a key that names another delivery
    (none should) is kept."""
    if dry_run:
        return "delivery_key", int(conn.scalar(text(f'SELECT count(*) FROM "{part.name}"')) or 0)
    batch = text(
        f'WITH d AS (SELECT org_id, dedup_key, id FROM "{part.name}" WHERE id >= :from '
        f"ORDER BY id LIMIT {BATCH}), gone AS (DELETE FROM delivery_key k USING d "
        "WHERE k.org_id = d.org_id AND k.dedup_key = d.dedup_key AND k.delivery_id = d.id "
        "RETURNING 1) SELECT (SELECT max(id) FROM d), (SELECT count(*) FROM gone)"
    )
    start, total = part.first, 0
    while True:
        last, gone = conn.execute(batch, {"from": start}).one()
        total += int(gone)
        if last is None:
            return "delivery_key", total
        start = int(last) + 1


RANGED = {
    "conversation_event": IdRanged(
        "conversation_id", "conversation", "c", timedelta(days=1), _conversations_quiet
    ),
    "delivery": IdRanged(
        "id", "delivery", "d", timedelta(days=7), _deliveries_quiet, _forget_delivery_keys
    ),
}


def partition_name(table: str, first: int) -> str:
    return f"{table}_{RANGED[table].tag}{first}"


def is_range_partition(name: str) -> bool:
    for table, spec in RANGED.items():
        prefix = f"{table}_{spec.tag}"
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            return True
    return False


def ranges(conn: Connection, table: str) -> list[Range]:
    """The table's range partitions, lowest first."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), obj_description(c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:table AS regclass)"
        ),
        {"table": table},
    )
    found = []
    for name, bound, comment in rows:
        if (match := _BOUNDS.search(bound or "")) is None:
            continue  # the DEFAULT partition
        made = datetime.fromisoformat(comment) if comment else None
        found.append(Range(name, int(match.group(1)), int(match.group(2)), made))
    return sorted(found, key=lambda r: r.first)


def make_ahead(conn: Connection, table: str, now: datetime, *, dry_run: bool) -> list[str]:
    """Once the newest range is half used (or overrun), make the next: from its end to a
    span's worth of ids (at the newest range's pace) past the last id issued."""
    spec = RANGED[table]
    existing = ranges(conn, table)
    last = int(conn.scalar(text(f'SELECT coalesce(max(id), 0) FROM "{spec.owner}"')) or 0)
    top = existing[-1] if existing else None
    start = top.end if top else 1
    if top is not None and last < (top.first + top.end) // 2:
        return []
    per_span = MIN_RANGE
    if top is not None and top.made_at is not None:
        spans = max((now - top.made_at) / spec.span, timedelta(hours=1) / spec.span)
        per_span = max(MIN_RANGE, int(max(last - top.first, 0) / spans))
    end = max(start, last) + per_span
    name = partition_name(table, start)
    if not dry_run:
        _create(conn, table, spec.key, name, start, end, now)
    return [name]


def _create(
    conn: Connection, table: str, key: str, name: str, first: int, end: int, now: datetime
) -> None:
    default = f"{table}_default"
    stray = f"{key} >= {first} AND {key} < {end}"
    moving = conn.scalar(text(f'SELECT count(*) FROM "{default}" WHERE {stray}'))
    if moving:  # the DEFAULT partition's rows of this range move into it
        conn.execute(
            text(
                f'CREATE TEMP TABLE "{name}_moving" ON COMMIT DROP AS '
                f'SELECT * FROM "{default}" WHERE {stray}'
            )
        )
        conn.execute(text(f'DELETE FROM "{default}" WHERE {stray}'))
    conn.execute(
        text(f'CREATE TABLE "{name}" PARTITION OF "{table}" FOR VALUES FROM ({first}) TO ({end})')
    )
    conn.execute(text(f"COMMENT ON TABLE \"{name}\" IS '{now.astimezone(UTC).isoformat()}'"))
    if moving:
        conn.execute(text(f'INSERT INTO "{table}" SELECT * FROM "{name}_moving"'))


def drop_quiet(
    conn: Connection, table: str, cutoff: datetime, *, dry_run: bool
) -> tuple[list[str], dict[str, int]]:
    """Detach and drop every range but the newest in which nothing was active since `cutoff`,
    after what goes with it; the ranges dropped, and the rows forgotten with them by table."""
    spec = RANGED[table]
    dropped: list[str] = []
    forgotten: dict[str, int] = {}
    for part in ranges(conn, table)[:-1]:
        if not spec.quiet(conn, part, cutoff):
            continue
        dropped.append(part.name)
        if spec.forget is not None:
            other, rows = spec.forget(conn, part, dry_run)
            forgotten[other] = forgotten.get(other, 0) + rows
        if not dry_run:
            conn.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION "{part.name}"'))
            conn.execute(text(f'DROP TABLE "{part.name}"'))
    return dropped, forgotten
