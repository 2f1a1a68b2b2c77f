"""The inbound-message outbox: what users' messages say, committed with their activity (or
before the platform gets its answer) and processed once by the `inbound` timer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.loop_writes import connection_on_loop, dsn_of
from reengage.adapters.db.models import InboundMessage
from reengage.adapters.db.sets import insert_many, insert_sql, rows_document
from reengage.domain.activity import ActivityEvent, EventType, subject_key
from reengage.domain.timer import Purpose, Timer, timer_key


def inbound_timer(bot_id: int, user_id: str, due_at: datetime) -> Timer:
    """The one timer that processes a subject's pending inbound messages, in order."""
    key = timer_key(Purpose.INBOUND, subject_key(bot_id, user_id))
    return Timer(key, Purpose.INBOUND, due_at, 0, {"bot_id": bot_id, "user_id": user_id})


def insert_inbound(
    session: Session, org_id: int, events: Sequence[ActivityEvent], now: datetime
) -> list[Timer]:
    """Store the inbound part of user messages (once per event id); return the timers that
    process them, to publish after the commit."""
    insert_rows(session, [inbound_rows(org_id, events, now)])
    return inbound_timers(events, now)


def inbound_rows(
    org_id: int, events: Sequence[ActivityEvent], now: datetime
) -> list[dict[str, Any]]:
    """The `inbound_message` rows of user messages that say something."""
    return [
        {
            "org_id": org_id,
            "bot_id": e.bot_id,
            "user_id": e.user_id,
            "event_id": e.event_id,
            "text": e.inbound.text,
            "name": e.inbound.name,
            "time_zone": e.inbound.time_zone,
            "language": e.inbound.language,
            "occurred_at": e.occurred_at,
            "received_at": now,
        }
        for e in events
        if e.inbound is not None and e.type is EventType.USER_MESSAGE
    ]


_TABLE: Any = InboundMessage.__table__
# What every new row starts with.
_FIXED = {"status": "pending", "effects": []}


def insert_rows(session: Session, groups: Sequence[list[dict[str, Any]]]) -> None:
    """Insert groups of rows (each from `inbound_rows`) together, once per event id."""
    rows = [{**row, **_FIXED} for group in groups for row in group]
    if rows:
        insert_many(session, _TABLE, rows)


def inbound_timers(events: Sequence[ActivityEvent], now: datetime) -> list[Timer]:
    subjects = dict.fromkeys((e.bot_id, e.user_id) for e in events if e.inbound is not None)
    return [inbound_timer(bot_id, user_id, now) for bot_id, user_id in subjects]


def rows_timers(groups: Sequence[list[dict[str, Any]]]) -> list[Timer]:
    """The timers that process stored rows (from `inbound_rows`), one per subject."""
    subjects = {(r["bot_id"], r["user_id"]): r["received_at"] for g in groups for r in g}
    return [inbound_timer(bot_id, user_id, at) for (bot_id, user_id), at in subjects.items()]


class InboundOnLoop:
    """A `LoopGroupCommit`'s commit of stored texts on PostgreSQL, awaited on the event loop:
    the rows of every request of the batch in one INSERT, sent in autocommit (its own
    transaction: all of them or none); when it fails, each request's rows in one of their
    own, so that a bad one fails its own caller only. Then the `inbound` timers of what was
    stored, by `schedule` (an error there fails the batch's callers, as when it ran in the
    writer thread)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        schedule: Callable[[list[Timer]], Awaitable[None]],
    ) -> None:
        self._sessions = sessions
        self._schedule = schedule
        self._sql: str | None = None

    @staticmethod
    def usable(sessions: sessionmaker[Session]) -> bool:
        """Whether the database is PostgreSQL (elsewhere the writer thread commits)."""
        bind = sessions.kw.get("bind")
        return bind is not None and dsn_of(bind) is not None

    async def __call__(self, groups: list[list[dict[str, Any]]]) -> list[Exception | None]:
        bind = self._sessions.kw["bind"]
        dsn = dsn_of(bind)
        assert dsn is not None, "InboundOnLoop needs PostgreSQL"
        if self._sql is None:
            with self._sessions() as session:
                self._sql = insert_sql(session, _TABLE, list(_COLUMNS), None)
        assert self._sql is not None, "the INSERT of inbound rows binds one document"
        conn = await connection_on_loop(dsn)
        errors: list[Exception | None]
        try:
            await conn.execute(self._sql, {"rows": _document(groups)})
            errors = [None] * len(groups)
        except psycopg.Error as exc:
            if conn.broken or len(groups) == 1:
                return [exc] * len(groups)  # a lost connection: the next batch opens one
            errors = []
            for group in groups:
                try:
                    await conn.execute(self._sql, {"rows": _document([group])})
                    errors.append(None)
                except psycopg.Error as own:
                    errors.append(own)
        committed = [group for group, error in zip(groups, errors, strict=True) if error is None]
        if committed:
            try:
                await self._schedule(rows_timers(committed))
            except Exception as exc:
                errors = [error or exc for error in errors]
        return errors


# The columns of a stored row: those of `inbound_rows`, then those every new row starts with.
_COLUMNS = (
    "org_id",
    "bot_id",
    "user_id",
    "event_id",
    "text",
    "name",
    "time_zone",
    "language",
    "occurred_at",
    "received_at",
    *_FIXED,
)


def _document(groups: Sequence[list[dict[str, Any]]]) -> str:
    return rows_document([{**row, **_FIXED} for group in groups for row in group], _COLUMNS)
