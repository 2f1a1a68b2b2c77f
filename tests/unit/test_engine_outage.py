"""A timer engine that meets an outage leaves the timers to their leases, in one line each
and no traceback; a batch is not retried timer by timer (each would fail alike)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import redis.exceptions
from structlog.testing import CapturingLogger

from reengage.domain.timer import Timer
from reengage.timers import engine
from reengage.timers.engine import TimerEngine
from reengage.timers.handler import Outcome
from reengage.timers.memory_store import InMemoryTimerStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Away:
    purpose = "inactivity"
    queue = "timers"

    def __init__(self) -> None:
        self.calls = 0

    def handle(self, timer: Timer, now: datetime) -> Outcome:
        self.calls += 1
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1.")

    def handle_batch(self, timers: Sequence[Timer], now: datetime) -> list[Outcome]:
        self.calls += 1
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1.")

    def pending(self, *_: object) -> list[tuple[int, Timer]]:
        return []


@pytest.mark.parametrize("count", [1, 3])
def test_an_outage_leaves_the_timers_unacknowledged_in_one_line(
    count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged = CapturingLogger()  # whatever logging other tests configured (and cached)
    monkeypatch.setattr(engine, "log", logged)
    store = InMemoryTimerStore()
    store.schedule([Timer(f"t{i}", "inactivity", NOW) for i in range(count)])
    claimed = store.claim_due(NOW, 10, timedelta(seconds=30))
    handler = Away()
    report = TimerEngine(store, {"inactivity": handler}).fire(claimed, NOW)  # type: ignore[dict-item]
    assert report.executed == []
    assert len(report.failed) == count
    assert handler.calls == 1
    [call] = logged.calls
    assert call.method_name == "warning"
    assert "exc_info" not in call.kwargs
    assert "ConnectionError: Error 111" in call.kwargs["error"]
