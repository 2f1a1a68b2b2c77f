"""The SQL timer store: PostgreSQL `FOR UPDATE SKIP LOCKED`, or SQLite for the embedded mode."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, literal_column, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import TimerRow
from reengage.domain.timer import Backlog, ClaimedTimer, Timer
from reengage.timers.wakeups import Listeners, LocalWakeups

# The most due timers `backlog` counts.
BACKLOG_COUNTED = 100_000


def _latest_per_key(timers: Sequence[Timer]) -> list[Timer]:
    latest: dict[str, Timer] = {}
    for timer in timers:
        current = latest.get(timer.key)
        if current is None or current.version <= timer.version:
            latest[timer.key] = timer
    return list(latest.values())


def _row(timer: Timer) -> dict[str, Any]:
    return {
        "key": timer.key,
        "purpose": timer.purpose,
        "due_at": timer.due_at,
        "run_at": timer.due_at,
        "version": timer.version,
        "token": uuid.uuid4().hex,
        "attempts": 0,
        "payload": dict(timer.payload),
    }


class SqlTimerStore:
    """Timers in the `timer` table; claims are atomic under any number of schedulers."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._dialect = sessions.kw["bind"].dialect.name
        # Other processes' schedules do not pass through here: schedulers still look.
        self._listeners = Listeners(complete=False)

    def _insert(self) -> Any:
        module = postgresql if self._dialect == "postgresql" else sqlite
        return module.insert(TimerRow)

    def schedule(self, timers: Sequence[Timer]) -> None:
        rows = [_row(t) for t in _latest_per_key(timers)]
        if not rows:
            return
        stmt = self._insert().values(rows)
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[TimerRow.key],
            set_={
                c: excluded[c]
                for c in ("purpose", "due_at", "run_at", "version", "token", "attempts", "payload")
            },
            where=TimerRow.version <= excluded.version,
        )
        with self._sessions.begin() as session:
            session.execute(stmt)
        self._listeners.notify(min(r["due_at"] for r in rows))

    def schedule_missing(self, timers: Sequence[Timer]) -> int:
        rows = [_row(t) for t in _latest_per_key(timers)]
        if not rows:
            return 0
        stmt = (
            self._insert()
            .values(rows)
            .on_conflict_do_nothing(index_elements=[TimerRow.key])
            .returning(TimerRow.key)
        )
        with self._sessions.begin() as session:
            added = len(session.execute(stmt).all())
        self._listeners.notify(min(r["due_at"] for r in rows))
        return added

    def cancel(self, keys: Sequence[str]) -> None:
        if keys:
            with self._sessions.begin() as session:
                session.execute(delete(TimerRow).where(TimerRow.key.in_(list(keys))))

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[ClaimedTimer]:
        due = (
            select(TimerRow.key)
            .where(TimerRow.run_at <= now)
            .order_by(TimerRow.run_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(TimerRow)
            .where(TimerRow.key.in_(due.scalar_subquery()))
            .values(run_at=now + lease, attempts=TimerRow.attempts + 1)
            .returning(TimerRow)
            .execution_options(synchronize_session=False)
        )
        with self._sessions.begin() as session:
            rows = session.scalars(stmt).all()
            return [
                ClaimedTimer(
                    Timer(r.key, r.purpose, r.due_at, r.version, dict(r.payload)),
                    r.token,
                    r.attempts,
                )
                for r in sorted(rows, key=lambda r: r.due_at)
            ]

    def ack(self, claimed: Sequence[ClaimedTimer]) -> int:
        if not claimed:
            return 0
        pairs = [(c.timer.key, c.token) for c in claimed]
        stmt = (
            delete(TimerRow)
            .where(tuple_(TimerRow.key, TimerRow.token).in_(pairs))
            .returning(TimerRow.key)
        )
        with self._sessions.begin() as session:
            return len(session.execute(stmt).all())

    def get(self, key: str) -> Timer | None:
        with self._sessions() as session:
            r = session.get(TimerRow, key)
            return Timer(r.key, r.purpose, r.due_at, r.version, dict(r.payload)) if r else None

    def count(self) -> int:
        with self._sessions() as session:
            return session.scalar(select(func.count()).select_from(TimerRow)) or 0

    def next_due(self) -> datetime | None:
        with self._sessions() as session:
            return session.scalar(select(func.min(TimerRow.run_at)))

    def in_flight(self, now: datetime) -> int:
        # A claim counts its attempt and moves `run_at` to the lease's end; a schedule resets
        # both, an ack deletes the row (a partial index holds the claimed rows only; the
        # literal lets the planner prove that `attempts = 1` falls within it).
        first = TimerRow.attempts == literal_column("1")
        stmt = select(func.count()).where(first, TimerRow.run_at > now)
        with self._sessions() as session:
            return session.scalar(stmt) or 0

    def backlog(self, now: datetime) -> Backlog:
        # Counted on the run_at index, up to a bound: a backlog that large is the alert.
        due = select(TimerRow.run_at).where(TimerRow.run_at <= now).limit(BACKLOG_COUNTED)
        sub = due.subquery()
        stmt = select(func.count(), func.min(sub.c.run_at))
        with self._sessions() as session:
            count, oldest = session.execute(stmt).one()
        return Backlog(int(count), oldest)

    def wakeups(self) -> LocalWakeups:
        return self._listeners.listen()

    def needs_rebuild(self) -> bool:
        # The table lives in the source of truth itself: it cannot come back empty alone.
        return False

    def mark_rebuilt(self) -> None:
        return None
