"""The two writes around each request: its in-flight mark, committed right before it leaves,
and a plain answer (sent), committed right after.

Every send thread of a process makes both for each message it sends, so they go through a
group commit: marks (and answers) that arrive while one transaction is under way share the
next, written by one statement over all their rows (`json_to_recordset`; the rows are found
by their ids in one array, or PostgreSQL plans a scan of the table to join). Each caller
still returns only once its own write is committed, so no request leaves before its mark is
durable and no answer is reported before it is recorded; a batch that fails is written again
row by row, so a bad row fails its own sender only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import BigInteger, Integer, String, Table, Update, bindparam, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.group_commit import GroupCommit
from reengage.adapters.db.models import Bot, Delivery
from reengage.adapters.db.sets import Rows, among, on_postgres
from reengage.adapters.db.types import UTCDateTime


@dataclass(slots=True)
class Mark:
    """A request about to leave: attempt `attempt` of delivery `delivery_id` (by `bot_id`).
    `marked` once written: False when a later run took the delivery over, or its bot was
    disabled or deleted since the claim (then it must not be sent)."""

    delivery_id: int
    attempt: int
    bot_id: int
    at: datetime
    marked: bool = False


@dataclass(slots=True)
class Answer:
    """A message the platform accepted. `found` once written (False: the row is gone), with
    the block that waited for it (`follower`), if any."""

    delivery_id: int
    at: datetime
    message_id: str | None
    found: bool = False
    follower: int | None = None


def _table() -> Table:
    return cast(Table, Delivery.__table__)


def _running(table: Table) -> Any:
    bots = cast(Table, Bot.__table__)
    return (
        select(bots.c.id).where(bots.c.id == table.c.bot_id, bots.c.disabled_at.is_(None)).exists()
    )


def _follower(table: Table) -> Any:
    """The block enqueued after the row (a step's blocks form a chain, each `after_id` the
    one before: at most one waits for each)."""
    waiting = table.alias("waiting")
    return (
        select(func.min(waiting.c.id))
        .where(
            waiting.c.after_id == table.c.id,
            waiting.c.status == "scheduled",
            waiting.c.reason == "after_previous",
        )
        .scalar_subquery()
    )


def _sent_values(at: Any, message_id: Any) -> dict[str, Any]:
    return {
        "status": "sent",
        "reason": None,
        "error": None,
        "finished_at": at,
        "sent_at": at,
        "channel_message_id": message_id,
        "platform_status": "sent",
    }


@cache
def _mark_one() -> Update:
    table = _table()
    return (
        update(table)
        .where(
            table.c.id == bindparam("p_id"),
            table.c.status == "sending",
            table.c.attempts == bindparam("p_attempt"),
            table.c.requested_at.is_(None),
            _running(table),
        )
        .values(requested_at=bindparam("p_at"))
    )


@cache
def _sent_one(returning: bool = True) -> Update:
    table = _table()
    stmt = (
        update(table)
        .where(table.c.id == bindparam("p_id"))
        .values(**_sent_values(bindparam("p_at"), bindparam("p_message_id")))
    )
    return stmt.returning(table.c.id, _follower(table)) if returning else stmt


def write_marks(session: Session, marks: Sequence[Mark]) -> None:
    """The in-flight marks of `marks`, each `marked` by what was written."""
    table = _table()
    if len(marks) > 1 and on_postgres(session):
        # Which bots still run is asked first: tested inside the UPDATE, it leads PostgreSQL
        # to plans that visit every delivery of each bot.
        bots = cast(Table, Bot.__table__)
        asked = {m.bot_id for m in marks}
        running = set(
            session.scalars(
                select(bots.c.id).where(
                    among(session, bots.c.id, asked), bots.c.disabled_at.is_(None)
                )
            )
        )
        rows = Rows(session, id=BigInteger(), attempt=Integer(), at=UTCDateTime())
        stmt = (
            update(table)
            .where(
                among(session, table.c.id, [m.delivery_id for m in marks]),
                table.c.id == rows["id"],
                table.c.status == "sending",
                table.c.attempts == rows["attempt"],
                table.c.requested_at.is_(None),
            )
            .values(requested_at=rows["at"])
            .returning(table.c.id)
        )
        params = [
            {"id": m.delivery_id, "attempt": m.attempt, "at": m.at}
            for m in marks
            if m.bot_id in running
        ]
        done = set(rows.execute(stmt, params).scalars()) if params else set()
        for mark in marks:
            mark.marked = mark.delivery_id in done
        return
    for mark in marks:
        values = {"p_id": mark.delivery_id, "p_attempt": mark.attempt, "p_at": mark.at}
        mark.marked = bool(session.execute(_mark_one(), values).rowcount)  # type: ignore[attr-defined]


def write_answers(session: Session, answers: Sequence[Answer]) -> None:
    """The sent rows of `answers`, each `found` (with its `follower`) by what was written."""
    table = _table()
    if len(answers) > 1 and on_postgres(session):
        rows = Rows(session, id=BigInteger(), at=UTCDateTime(), message_id=String())
        stmt = (
            update(table)
            .where(among(session, table.c.id, [a.delivery_id for a in answers]))
            .where(table.c.id == rows["id"])
            .values(**_sent_values(rows["at"], rows["message_id"]))
            .returning(table.c.id, _follower(table))
        )
        params = [{"id": a.delivery_id, "at": a.at, "message_id": a.message_id} for a in answers]
        written = {row[0]: row[1] for row in rows.execute(stmt, params)}
        for answer in answers:
            answer.found = answer.delivery_id in written
            answer.follower = written.get(answer.delivery_id)
        return
    pg = on_postgres(session)
    for answer in answers:
        values = {"p_id": answer.delivery_id, "p_at": answer.at, "p_message_id": answer.message_id}
        if pg:
            row = session.execute(_sent_one(), values).first()
            answer.found, answer.follower = row is not None, row[1] if row is not None else None
            continue
        # SQLite's RETURNING names columns without their table, which would turn the
        # follower's test against its own row: it is read by a statement of its own.
        answer.found = bool(session.execute(_sent_one(False), values).rowcount)  # type: ignore[attr-defined]
        if answer.found:
            answer.follower = session.execute(
                select(_follower(table)).where(table.c.id == answer.delivery_id)
            ).scalar()


class RequestWrites:
    """The group commits of one process's marks and answers (made where they are used: a
    forked worker makes its own)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._marks: GroupCommit[Mark] = GroupCommit(sessions, write_marks)
        self._answers: GroupCommit[Answer] = GroupCommit(sessions, write_answers)

    def mark(self, delivery_id: int, attempt: int, bot_id: int, at: datetime) -> bool:
        """Mark a request in flight, committed; False when it must not leave."""
        mark = Mark(delivery_id, attempt, bot_id, at)
        self._marks(mark)
        return mark.marked

    def answer(self, delivery_id: int, at: datetime, message_id: str | None) -> Answer:
        """Record a message sent, committed."""
        answer = Answer(delivery_id, at, message_id)
        self._answers(answer)
        return answer
