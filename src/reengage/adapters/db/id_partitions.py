"""Ranges of an owner's id as partitions: `conversation_event` by `conversation_id`.

Conversation ids are issued in time order, so a range of them is a stretch of time, and the
log's once-only key `(conversation_id, dedup_key)` holds the partition key unchanged. Each
range partition (`conversation_event_c<first id>`) carries in its comment when it was made;
the pace at which the newest range fills sizes the next one (a day's worth of ids, at least
`MIN_RANGE`), made once the newest is half full. A range goes whole once every conversation
in it was last active (closed, written, due) before the cutoff. Ids past every range land in
the DEFAULT partition, moved into their range when it is made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, text

MIN_RANGE = 100_000
# table -> (its partition key, the table whose ids it holds)
RANGED = {"conversation_event": ("conversation_id", "conversation")}
_BOUNDS = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")
_NAME = re.compile(r"_c\d+$")


@dataclass(frozen=True, slots=True)
class Range:
    name: str
    first: int
    end: int  # exclusive
    made_at: datetime | None


def is_range_partition(name: str) -> bool:
    return any(name.startswith(f"{t}_c") and _NAME.search(name) for t in RANGED)


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
    day's worth of ids (at the newest range's pace) past the last id issued."""
    key, owner = RANGED[table]
    existing = ranges(conn, table)
    last = int(conn.scalar(text(f'SELECT coalesce(max(id), 0) FROM "{owner}"')) or 0)
    top = existing[-1] if existing else None
    start = top.end if top else 1
    if top is not None and last < (top.first + top.end) // 2:
        return []
    per_day = MIN_RANGE
    if top is not None and top.made_at is not None:
        days = max((now - top.made_at) / timedelta(days=1), 1 / 24)
        per_day = max(MIN_RANGE, int(max(last - top.first, 0) / days))
    end = max(start, last) + per_day
    name = f"{table}_c{start}"
    if not dry_run:
        _create(conn, table, key, name, start, end, now)
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


def drop_quiet(conn: Connection, table: str, cutoff: datetime, *, dry_run: bool) -> list[str]:
    """Detach and drop every range but the newest whose conversations were all last active
    before `cutoff`."""
    _, owner = RANGED[table]
    dropped = []
    for part in ranges(conn, table)[:-1]:
        if not _quiet(conn, owner, part, cutoff):
            continue
        dropped.append(part.name)
        if not dry_run:
            conn.execute(text(f'ALTER TABLE "{table}" DETACH PARTITION "{part.name}"'))
            conn.execute(text(f'DROP TABLE "{part.name}"'))
    return dropped


def _quiet(conn: Connection, owner: str, part: Range, cutoff: datetime) -> bool:
    # Cheap first: the range's newest conversation opened before the cutoff (one index probe).
    newest = conn.scalar(
        text(f'SELECT opened_at FROM "{owner}" WHERE id < :end ORDER BY id DESC LIMIT 1'),
        {"end": part.end},
    )
    if newest is not None and newest >= cutoff:
        return False
    # Then every one of them: closed, written to and due before it.
    lively = conn.scalar(
        text(
            f'SELECT 1 FROM "{owner}" WHERE id >= :first AND id < :end AND greatest('
            "opened_at, closed_at, last_activity_at, inactivity_due_at) >= :cutoff LIMIT 1"
        ),
        {"first": part.first, "end": part.end, "cutoff": cutoff},
    )
    return lively is None
