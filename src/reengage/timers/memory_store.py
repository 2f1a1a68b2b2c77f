"""An in-memory timer store: the reference implementation of the port, for tests."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from reengage.domain.timer import Backlog, ClaimedTimer, Timer
from reengage.timers.wakeups import Listeners, LocalWakeups


@dataclass(slots=True)
class _Entry:
    timer: Timer
    token: str
    run_at: datetime
    attempts: int = 0


class InMemoryTimerStore:
    """Same semantics as the Redis and SQL stores, held in a dict."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._built = False
        self._listeners = Listeners(complete=True)

    def schedule(self, timers: Sequence[Timer]) -> None:
        with self._lock:
            for timer in timers:
                current = self._entries.get(timer.key)
                if current is None or current.timer.version <= timer.version:
                    self._entries[timer.key] = _Entry(timer, uuid.uuid4().hex, timer.due_at)
        self._listeners.notify(min((t.due_at for t in timers), default=None))

    def schedule_missing(self, timers: Sequence[Timer]) -> int:
        with self._lock:
            added = []
            for timer in timers:
                if timer.key not in self._entries:
                    self._entries[timer.key] = _Entry(timer, uuid.uuid4().hex, timer.due_at)
                    added.append(timer.due_at)
        self._listeners.notify(min(added, default=None))
        return len(added)

    def cancel(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[ClaimedTimer]:
        with self._lock:
            due = sorted(
                (e for e in self._entries.values() if e.run_at <= now), key=lambda e: e.run_at
            )[:limit]
            claimed = []
            for entry in due:
                entry.run_at = now + lease
                entry.attempts += 1
                claimed.append(ClaimedTimer(entry.timer, entry.token, entry.attempts))
            return claimed

    def ack(self, claimed: Sequence[ClaimedTimer]) -> int:
        with self._lock:
            removed = 0
            for item in claimed:
                entry = self._entries.get(item.timer.key)
                if entry is not None and entry.token == item.token:
                    del self._entries[item.timer.key]
                    removed += 1
            return removed

    def get(self, key: str) -> Timer | None:
        with self._lock:
            entry = self._entries.get(key)
            return replace(entry.timer) if entry else None

    def count(self) -> int:
        return len(self._entries)

    def next_due(self) -> datetime | None:
        with self._lock:
            return min((e.run_at for e in self._entries.values()), default=None)

    def in_flight(self, now: datetime) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if e.attempts == 1 and e.run_at > now)

    def backlog(self, now: datetime) -> Backlog:
        with self._lock:
            due = [e.run_at for e in self._entries.values() if e.run_at <= now]
        return Backlog(len(due), min(due, default=None))

    def wakeups(self) -> LocalWakeups:
        return self._listeners.listen()

    def needs_rebuild(self) -> bool:
        return not self._built

    def mark_rebuilt(self) -> None:
        self._built = True

    def forget_everything(self) -> None:
        """Lose all state, as a restarted process would."""
        with self._lock:
            self._entries.clear()
            self._built = False
