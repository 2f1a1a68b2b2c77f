"""Inbound platform traffic: updates become activity; delivery statuses move forward only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import psycopg
import structlog
from psycopg.rows import dict_row
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.loop_writes import connection_on_loop
from reengage.adapters.db.models import Contact, Delivery
from reengage.domain.delivery import StatusUpdate
from reengage.ports import TimerStore
from reengage.services.contacts import mark_blocked, mark_unblocked

log = structlog.get_logger(__name__)

# A delivery's platform status only moves up this ladder. Evidence that a message reached a
# device (delivered, read) outranks a failure reported by another device.
STATUS_RANK = {"sent": 1, "failed": 2, "delivered": 3, "read": 4}


def set_blocked(
    sessions: sessionmaker[Session],
    timers: TimerStore,
    org_id: int,
    bot_id: int,
    user_id: str,
    blocked: bool,
    now: datetime,
) -> None:
    """The user blocked (or unblocked) the bot on the platform."""
    with sessions.begin() as session:
        contact = session.scalar(
            select(Contact).where(Contact.bot_id == bot_id, Contact.external_id == user_id)
        )
        if contact is None:
            if not blocked:
                return
            contact = Contact(org_id=org_id, bot_id=bot_id, external_id=user_id, created_at=now)
            session.add(contact)
            session.flush()
        keys = mark_blocked(session, contact, now) if blocked else []
        if not blocked:
            mark_unblocked(contact)
    timers.cancel(keys)


@dataclass(frozen=True, slots=True)
class Statuses:
    """One notification's delivery statuses."""

    bot_id: int
    updates: Sequence[StatusUpdate]
    now: datetime


def apply_statuses(
    sessions: sessionmaker[Session], bot_id: int, updates: Sequence[StatusUpdate], now: datetime
) -> int:
    """Apply platform statuses to deliveries, never moving one backwards; return how many moved."""
    with sessions.begin() as session:
        return _apply(session, [Statuses(bot_id, updates, now)])


def write_statuses(session: Session, notifications: Sequence[Statuses]) -> None:
    """Several notifications' statuses in one transaction (a group commit's write)."""
    _apply(session, notifications)


_FIELDS = ("status", "reason", "platform_status", "error", "finished_at")
_TABLE = cast(Table, Delivery.__table__)  # Core: rows read and written as values
_MOVE = (
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("row_id"))
    .values({f: bindparam(f"new_{f}") for f in _FIELDS})
)


def _apply(session: Session, notifications: Sequence[Statuses]) -> int:
    """One read of the deliveries concerned (locked, in id order) and one write of those that
    moved: the statuses of any number of notifications in two statements."""
    wanted = _wanted(notifications)
    if not wanted:
        return 0
    c = _TABLE.c
    found = session.execute(
        select(c.id, c.bot_id, c.channel_message_id, *(c[f] for f in _FIELDS))
        .where(
            c.bot_id.in_({bot for bot, _ in wanted}),
            c.channel_message_id.in_({message for _, message in wanted}),
        )
        .order_by(c.id)
        .with_for_update()
    ).all()
    moved = _moved(notifications, wanted, [r._asdict() for r in found])
    if moved:
        session.execute(_MOVE, moved)
    return len(moved)


def _wanted(notifications: Sequence[Statuses]) -> set[tuple[int, str]]:
    return {(n.bot_id, u.channel_message_id) for n in notifications for u in n.updates}


def _moved(
    notifications: Sequence[Statuses], wanted: set[tuple[int, str]], found: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The new values of the deliveries (`found`, in id order) that the statuses move."""
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for r in found:
        if (r["bot_id"], r["channel_message_id"]) in wanted:
            rows.setdefault((r["bot_id"], r["channel_message_id"]), r)
    moved: dict[int, dict[str, Any]] = {}
    for notification in notifications:
        for said in notification.updates:
            row = rows.get((notification.bot_id, said.channel_message_id))
            if row is not None and _advance(row, said, notification.now):
                moved[row["id"]] = {"row_id": row["id"], **{f"new_{f}": row[f] for f in _FIELDS}}
    return list(moved.values())


# The same two statements for the event loop's own connection (`write_statuses_on_loop`).
_COLUMNS = ", ".join(_FIELDS)
_READ_SQL = (
    f"SELECT id, bot_id, channel_message_id, {_COLUMNS} FROM delivery"
    " WHERE bot_id = ANY(%(bots)s) AND channel_message_id = ANY(%(messages)s)"
    " ORDER BY id FOR UPDATE"
)
_MOVE_SQL = (
    "UPDATE delivery SET "
    + ", ".join(f"{f} = %(new_{f})s" for f in _FIELDS)
    + " WHERE id = %(row_id)s"
)


async def write_statuses_on_loop(dsn: str, notifications: list[Statuses]) -> list[Exception | None]:
    """`write_statuses` on the event loop (a `LoopGroupCommit`'s commit): the notifications'
    statuses in one transaction of the loop's own connection for statuses; when it fails,
    each notification's in one of its own, so that a bad one fails its own caller only."""
    conn = await connection_on_loop(dsn, "statuses")
    try:
        await _apply_on_loop(conn, notifications)
        return [None] * len(notifications)
    except psycopg.Error as exc:
        if conn.broken or len(notifications) == 1:
            return [exc] * len(notifications)
    errors: list[Exception | None] = []
    for notification in notifications:
        try:
            await _apply_on_loop(conn, [notification])
            errors.append(None)
        except psycopg.Error as exc:
            errors.append(exc)
    return errors


async def _apply_on_loop(conn: psycopg.AsyncConnection[Any], notifications: list[Statuses]) -> int:
    wanted = _wanted(notifications)
    if not wanted:
        return 0
    bots = sorted({bot for bot, _ in wanted})
    messages = sorted({message for _, message in wanted})
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_READ_SQL, {"bots": bots, "messages": messages})
        moved = _moved(notifications, wanted, await cur.fetchall())
        if moved:
            await cur.executemany(_MOVE_SQL, moved)
    return len(moved)


def _advance(row: dict[str, Any], said: StatusUpdate, now: datetime) -> bool:
    """Move a delivery's row (as a dict) by one status, forward only; whether it moved."""
    if said.status not in STATUS_RANK:
        return False
    if STATUS_RANK[said.status] <= STATUS_RANK.get(row["platform_status"] or "", 0):
        return False
    row["platform_status"] = said.status
    if said.status == "failed":
        row["status"] = "failed"
        row["reason"] = "window_closed" if said.error_code == 131047 else "platform_failed"
        row["error"] = f"{said.error_code}: {said.error_title}"[:500]
        row["finished_at"] = now
    elif row["status"] == "failed" and row["reason"] in ("platform_failed", "window_closed"):
        row["status"], row["reason"] = "sent", None  # another device did get it
    return True
