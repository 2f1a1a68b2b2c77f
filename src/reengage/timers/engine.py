"""Run claimed timers: each handler's work, then what its outcome asks — effects, follow-up
timers, cancellations — then the acknowledgement. A timer whose handler failed is not
acknowledged: its lease runs out and it runs again (handlers are idempotent)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from reengage.adapters.outage import is_outage, one_line
from reengage.domain.timer import ClaimedTimer, Timer
from reengage.ports import TimerStore
from reengage.timers.handler import BatchHandler, Handlers, Outcome

log = structlog.get_logger(__name__)

# A timer that keeps failing is given up after this many claims (and logged), so one poisoned
# row cannot occupy a scheduler forever.
MAX_ATTEMPTS = 10
# The most timers one handler batch (one transaction) takes.
MAX_BATCH = 100


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
        """Run each timer's handler and what follows it; acknowledge those that ran. Timers
        of a purpose whose handler takes batches go to it together (one transaction); if the
        batch fails, each of its timers runs alone, so one bad timer fails only itself."""
        report = FireReport()
        follow_ups: list[Timer] = []
        for purpose, items in _by_purpose(claimed):
            handler = self.handlers.get(purpose)
            if isinstance(handler, BatchHandler) and len(items) > 1:
                try:
                    outcomes = self._batch(handler, items, now)
                except Exception as exc:  # an outage: each timer alone would fail alike
                    log.warning("timer.batch_unavailable", purpose=purpose, error=one_line(exc))
                    report.failed += items
                    continue
                if outcomes is not None:
                    for item, outcome in zip(items, outcomes, strict=True):
                        follow_ups += self._after(outcome)
                        report.executed.append(item)
                    continue
            for item in items:
                try:
                    follow_ups += self._run(item.timer, now)
                except Exception as exc:
                    if is_outage(exc):  # the database or Redis away: a line, no traceback
                        log.warning("timer.failed", key=item.timer.key, error=one_line(exc))
                    else:
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

    @staticmethod
    def _batch(
        handler: BatchHandler, items: list[ClaimedTimer], now: datetime
    ) -> list[Outcome] | None:
        timers = [item.timer for item in items]
        try:
            return handler.handle_batch(timers, now)
        except Exception as exc:
            if is_outage(exc):
                raise
            log.warning(
                "timer.batch_failed", purpose=handler.purpose, timers=len(timers), error=repr(exc)
            )
            return None

    def _run(self, timer: Timer, now: datetime) -> list[Timer]:
        handler = self.handlers.get(timer.purpose)
        if handler is None:
            log.error("timer.unknown_purpose", key=timer.key, purpose=timer.purpose)
            return []
        return self._after(handler.handle(timer, now))

    def _after(self, outcome: Outcome) -> list[Timer]:
        """What an outcome asks once its handler committed: effects, cancellations; the
        timers to schedule."""
        timers = list(outcome.timers)
        for effect in outcome.effects:  # what must follow the handler's commit
            timers += effect()
        if outcome.cancel:
            self.store.cancel(outcome.cancel)
        return timers


def _by_purpose(claimed: Sequence[ClaimedTimer]) -> list[tuple[str, list[ClaimedTimer]]]:
    """The timers of each purpose, in batches of at most `MAX_BATCH` (a batch's transaction
    holds its rows' locks until it ends), dealt like cards: timers come sorted by key, and a
    slice of them would be one bot's."""
    groups: dict[str, list[ClaimedTimer]] = {}
    for item in claimed:
        groups.setdefault(item.timer.purpose, []).append(item)
    return [
        (purpose, batch) for purpose, items in groups.items() for batch in deal(items, MAX_BATCH)
    ]


def deal(items: Sequence[ClaimedTimer], size: int) -> list[list[ClaimedTimer]]:
    """The timers in batches of at most `size`, each holding as many bots as it can: every
    bot's first timer (in the order given: by due time), then every bot's second, and so on,
    cut in slices. A batch of one bot's sends would wait on that bot's rate limit while the
    other workers wait on their own single bot; timers that name no bot count as a bot each.
    A bot's timers stay in their order."""
    rounds: list[list[ClaimedTimer]] = []
    seen: dict[object, int] = {}
    for item in items:
        bot = item.timer.payload.get("bot_id")
        k = 0
        if bot is not None:
            k = seen[bot] = seen.get(bot, -1) + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(item)
    order = [item for batch in rounds for item in batch]
    count = -(-len(order) // size)
    return [order[i * len(order) // count : (i + 1) * len(order) // count] for i in range(count)]
