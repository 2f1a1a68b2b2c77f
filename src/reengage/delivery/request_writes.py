"""The two writes around each request: its in-flight mark, committed right before it leaves,
and a plain answer (sent), committed right after.

Every send thread of a process makes both for each message it sends, so they go through a
group commit: marks (and answers) that arrive while one transaction is under way share the
next, written by one statement over all their rows (`json_to_recordset`; the rows are found
by their ids in one array, or PostgreSQL plans a scan of the table to join). Each caller
still returns only once its own write is committed, so no request leaves before its mark is
durable and no answer is reported before it is recorded; a batch that fails is written again
row by row, so a bad row fails its own sender only.

On PostgreSQL each batch is one statement in autocommit: it is its own transaction, durable
when its result arrives, so a batch costs one round trip instead of BEGIN, the statements and
COMMIT, each of which made the batch's senders wait once more for the processor.

A sender with more to send does not wait for its answer (`answer_later`): its bot's next
request leaves while the answer is written, and its batch ends once every answer is committed.
Nothing is reported sooner than before; only the sender's next request leaves sooner.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Engine,
    Table,
    Text,
    TextClause,
    Update,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.group_commit import GroupCommit
from reengage.adapters.db.models import Bot, Delivery
from reengage.adapters.db.sets import on_postgres, recordset_params


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
    one before: at most one waits for each). Its smallest id is taken as `min(id + 0)`: a
    plain `min(id)` lets PostgreSQL read the open deliveries in id order until one matches
    (the partial index of open ids), every open delivery when none waits; this way it reads
    the few of the `after_id` index."""
    waiting = table.alias("waiting")
    return (
        select(func.min(waiting.c.id + 0))
        .where(
            waiting.c.after_id == table.c.id,
            waiting.c.status == "scheduled",
            waiting.c.reason == "after_previous",
        )
        .scalar_subquery()
    )


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
def _sent_one() -> Update:
    table = _table()
    return (
        update(table)
        .where(table.c.id == bindparam("p_id"))
        .values(
            status="sent",
            reason=None,
            error=None,
            finished_at=bindparam("p_at"),
            sent_at=bindparam("p_at"),
            channel_message_id=bindparam("p_message_id"),
            platform_status="sent",
        )
    )


@cache
def _marks() -> TextClause:
    """PostgreSQL: the marks of a batch in one statement. Which bots still run is taken once,
    as an array (an init plan): tested as a join inside the UPDATE, it leads PostgreSQL to
    plans that visit every delivery of each bot; the rows are found by their ids in one
    array."""
    return text(
        "UPDATE delivery SET requested_at = v.at "
        "FROM json_to_recordset(CAST(:rows AS json)) AS v(id bigint, attempt integer, "
        "at timestamp with time zone) "
        "WHERE delivery.id = ANY(CAST(:ids AS BIGINT[])) AND delivery.id = v.id "
        "AND delivery.status = 'sending' AND delivery.attempts = v.attempt "
        "AND delivery.requested_at IS NULL "
        "AND delivery.bot_id = ANY(ARRAY(SELECT bot.id FROM bot "
        "WHERE bot.id = ANY(CAST(:bots AS BIGINT[])) AND bot.disabled_at IS NULL)) "
        "RETURNING delivery.id"
    ).bindparams(
        bindparam("rows", type_=Text()),
        bindparam("ids", type_=ARRAY(BigInteger())),
        bindparam("bots", type_=ARRAY(BigInteger())),
    )


def write_marks(session: Session, marks: Sequence[Mark]) -> None:
    """The in-flight marks of `marks`, each `marked` by what was written."""
    if on_postgres(session):
        rows = [{"id": m.delivery_id, "attempt": m.attempt, "at": m.at} for m in marks]
        params = {
            **recordset_params(("id", "attempt", "at"), rows),
            "ids": [m.delivery_id for m in marks],
            "bots": sorted({m.bot_id for m in marks}),
        }
        done = set(session.execute(_marks(), params).scalars())
        for mark in marks:
            mark.marked = mark.delivery_id in done
        return
    for mark in marks:  # elsewhere (SQLite) row by row
        values = {"p_id": mark.delivery_id, "p_attempt": mark.attempt, "p_at": mark.at}
        mark.marked = bool(session.execute(_mark_one(), values).rowcount)  # type: ignore[attr-defined]


@cache
def _answers() -> TextClause:
    """PostgreSQL: the answers of a batch in one statement (the rows found by their ids in
    one array), each with the block that waited for it (`_follower`, by the same lookup)."""
    return text(
        "UPDATE delivery SET status = 'sent', reason = NULL, error = NULL, "
        "finished_at = v.at, sent_at = v.at, channel_message_id = v.message_id, "
        "platform_status = 'sent' "
        "FROM json_to_recordset(CAST(:rows AS json)) AS v(id bigint, "
        "at timestamp with time zone, message_id text) "
        "WHERE delivery.id = ANY(CAST(:ids AS BIGINT[])) AND delivery.id = v.id "
        "RETURNING delivery.id, (SELECT min(waiting.id + 0) FROM delivery AS waiting "
        "WHERE waiting.after_id = delivery.id AND waiting.status = 'scheduled' "
        "AND waiting.reason = 'after_previous')"
    ).bindparams(bindparam("rows", type_=Text()), bindparam("ids", type_=ARRAY(BigInteger())))


def write_answers(session: Session, answers: Sequence[Answer]) -> None:
    """The sent rows of `answers`, each `found` (with its `follower`) by what was written."""
    if on_postgres(session):
        written = {row[0]: row[1] for row in session.execute(_answers(), _answer_params(answers))}
        for answer in answers:
            answer.found = answer.delivery_id in written
            answer.follower = written.get(answer.delivery_id)
        return
    # Elsewhere (SQLite) row by row; its RETURNING names columns without their table, which
    # would turn the follower's test against its own row: it is read by a statement of its own.
    for answer in answers:
        values = {"p_id": answer.delivery_id, "p_at": answer.at, "p_message_id": answer.message_id}
        answer.found = bool(session.execute(_sent_one(), values).rowcount)  # type: ignore[attr-defined]
        if answer.found:
            answer.follower = session.execute(
                select(_follower(_table())).where(_table().c.id == answer.delivery_id)
            ).scalar()


def _answer_params(answers: Sequence[Answer]) -> dict[str, Any]:
    rows = [{"id": a.delivery_id, "at": a.at, "message_id": a.message_id} for a in answers]
    return {
        **recordset_params(("id", "at", "message_id"), rows),
        "ids": [a.delivery_id for a in answers],
    }


class RequestWrites:
    """The group commits of one process's marks and answers (made where they are used: a
    forked worker makes its own)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        each_its_own = _autocommit(sessions)
        self._marks: GroupCommit[Mark] = GroupCommit(each_its_own, write_marks)
        self._answers: GroupCommit[Answer] = GroupCommit(each_its_own, write_answers)

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

    def answer_later(
        self, delivery_id: int, at: datetime, message_id: str | None
    ) -> tuple[Answer, Future[None]]:
        """`answer` for a sender with its bot's next request to make: written by the group
        commit's own thread, committed when the future ends."""
        answer = Answer(delivery_id, at, message_id)
        return answer, self._answers.submit(answer)


def _autocommit(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """On PostgreSQL, sessions whose every statement is a transaction of its own (each write
    of marks or answers is one statement); elsewhere `sessions` (SQLite's writes take the
    write lock up front)."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, Engine) or bind.dialect.name != "postgresql":
        return sessions
    return sessionmaker(
        **{**sessions.kw, "bind": bind.execution_options(isolation_level="AUTOCOMMIT")}
    )
