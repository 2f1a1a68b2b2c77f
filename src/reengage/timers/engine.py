"""Run claimed timers: each handler's work, then what its outcome asks — effects, follow-up
timers, cancellations — then the acknowledgement. A timer whose handler failed is not
acknowledged: its lease runs out and it runs again (handlers are idempotent)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from reengage.domain.timer import ClaimedTimer, Timer
from reengage.ports import TimerStore
from reengage.timers.handler import Handlers

log = structlog.get_logger(__name__)

# A timer that keeps failing is given up after this many claims (and logged), so one poisoned
# row cannot occupy a scheduler forever.
MAX_ATTEMPTS = 10


@dataclass(slots=True)
class FireReport:
    executed: list[ClaimedTimer] = field(default_factory=list)
    failed: list[ClaimedTimer] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TimerEngine:
    """The store and the handlers of every purpose."""

    store: TimerStore
    handlers: Handlers

    def fire(self, claimed: Sequence[ClaimedTimer], now: datetime) -> FireReport:
        """Run each timer's handler and what follows it; acknowledge those that ran."""
        report = FireReport()
        follow_ups: list[Timer] = []
        for item in claimed:
            try:
                follow_ups += self._run(item.timer, now)
            except Exception:
                log.exception("timer.failed", key=item.timer.key, attempts=item.attempts)
                if item.attempts >= MAX_ATTEMPTS:
                    log.error("timer.abandoned", key=item.timer.key, attempts=item.attempts)
                    report.executed.append(item)
                else:
                    report.failed.append(item)
                continue
            report.executed.append(item)
        # Follow-ups first: a crash before the acknowledgement re-runs an idempotent handler,
        # never loses what it asked for (a follow-up under the fired key replaces it).
        self.store.schedule(follow_ups)
        self.store.ack(report.executed)
        return report

    def _run(self, timer: Timer, now: datetime) -> list[Timer]:
        handler = self.handlers.get(timer.purpose)
        if handler is None:
            log.error("timer.unknown_purpose", key=timer.key, purpose=timer.purpose)
            return []
        outcome = handler.handle(timer, now)
        timers = list(outcome.timers)
        for effect in outcome.effects:  # what must follow the handler's commit
            timers += effect()
        if outcome.cancel:
            self.store.cancel(outcome.cancel)
        return timers
