"""Wake-ups of a sleeping scheduler within one process: the store tells the scheduler when it
schedules a timer earlier than the one it sleeps towards."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime


class LocalWakeups:
    """One scheduler's listener."""

    def __init__(self, complete: bool, on_close: Callable[[LocalWakeups], None]) -> None:
        self._complete = complete
        self._on_close = on_close
        self._changed = threading.Condition()
        self._earliest: datetime | None = None

    @property
    def complete(self) -> bool:
        return self._complete

    def notify(self, due: datetime) -> None:
        """A timer due at `due` was scheduled."""
        with self._changed:
            if self._earliest is None or due < self._earliest:
                self._earliest = due
                self._changed.notify_all()

    def arm(self) -> None:
        with self._changed:
            self._earliest = None

    def wait(self, until: datetime, seconds: float) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: self._earliest is not None and self._earliest < until, max(0.0, seconds)
            )

    def close(self) -> None:
        self._on_close(self)


class Listeners:
    """A store's schedulers in this process. `complete`: whether every schedule of every
    process passes through here."""

    def __init__(self, *, complete: bool) -> None:
        self._complete = complete
        self._lock = threading.Lock()
        self._all: set[LocalWakeups] = set()

    def listen(self) -> LocalWakeups:
        listener = LocalWakeups(self._complete, self._drop)
        with self._lock:
            self._all.add(listener)
        return listener

    def notify(self, due: datetime | None) -> None:
        """Timers were scheduled, the earliest due at `due`."""
        if due is None:
            return
        with self._lock:
            listeners = list(self._all)
        for listener in listeners:
            listener.notify(due)

    def _drop(self, listener: LocalWakeups) -> None:
        with self._lock:
            self._all.discard(listener)
