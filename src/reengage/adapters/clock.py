"""Clocks: the real one, an accelerated one for demos, a manual one for tests.

Platforms count their limits (retry_after, pacing gaps) in real seconds: `real_time` and
`sleep_real` are the wall clock even when a demo runs time faster, and `at_real` says which
instant of this clock a real moment is. A manual clock is its own real time: tests control
everything.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class SystemClock:
    """Wall-clock UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def real_time(self) -> float:
        return time.time()

    def real_seconds(self, delta: timedelta) -> float:
        return delta.total_seconds()

    def sleep_real(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def at_real(self, moment: float) -> datetime:
        return datetime.fromtimestamp(moment, UTC)


class AcceleratedClock:
    """Time that runs `speed` times faster than real time from `epoch` (default: the moment
    it was made). Processes given the same epoch agree on the time."""

    def __init__(self, speed: float, epoch: datetime | None = None) -> None:
        self.speed = speed
        self._start = epoch or datetime.now(UTC)
        self._origin = self._start.timestamp()

    def now(self) -> datetime:
        elapsed = (time.time() - self._origin) * self.speed
        return self._start + timedelta(seconds=elapsed)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) / self.speed)

    def real_time(self) -> float:
        return time.time()

    def real_seconds(self, delta: timedelta) -> float:
        return delta.total_seconds() / self.speed

    def sleep_real(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def at_real(self, moment: float) -> datetime:
        return self.now() + timedelta(seconds=(moment - time.time()) * self.speed)


class ManualClock:
    """A clock that moves only when told to; `sleep` advances it instead of waiting."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when

    def sleep(self, seconds: float) -> None:
        self.advance(timedelta(seconds=max(0.0, seconds)))

    def real_time(self) -> float:
        return self.now().timestamp()

    def real_seconds(self, delta: timedelta) -> float:
        return delta.total_seconds()  # it only moves when told: any wait is the caller's

    def sleep_real(self, seconds: float) -> None:
        self.sleep(seconds)

    def at_real(self, moment: float) -> datetime:
        return datetime.fromtimestamp(moment, UTC)
