"""The scheduler: claim due timers in batches and hand them to an executor."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session, sessionmaker

from reengage.ports import ActivityStore, Clock, TimerExecutor, TimerStore
from reengage.timers.handler import Handlers
from reengage.timers.rebuild import rebuild_timers

log = structlog.get_logger(__name__)

# A timer is swept back in only when this overdue: younger ones may be in flight between a
# commit and their publication to the store.
SWEEP_GRACE = timedelta(seconds=5)
# Seconds of flushing per round at most; the rest waits for the next round.
FLUSH_BUDGET = 0.25


class Scheduler:
    """Any number of schedulers may run: claims are atomic and leased."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        store: TimerStore,
        executor: TimerExecutor,
        registry: Handlers,
        clock: Clock,
        batch: int = 500,
        lease: timedelta = timedelta(seconds=30),
        poll: timedelta = timedelta(milliseconds=50),
        sweep_interval: timedelta = timedelta(seconds=30),
        activity: ActivityStore | None = None,
        flush_interval: timedelta = timedelta(seconds=1),
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.executor = executor
        self.registry = registry
        self.clock = clock
        self.batch = batch
        self.lease = lease
        self.poll = poll
        self.sweep_interval = sweep_interval
        self.activity = activity
        self.flush_interval = flush_interval
        self._last_sweep: datetime | None = None
        self._last_flush: datetime | None = None

    def maintain(self, now: datetime) -> None:
        """Flush hot activity to the database; rebuild an emptied timer store; sweep in timers
        lost between commit and publication."""
        if self.activity is not None and (
            self._last_flush is None or now - self._last_flush >= self.flush_interval
        ):
            # Bounded: a burst of new subjects must not starve the claiming of due timers.
            budget = time.monotonic() + FLUSH_BUDGET
            while self.activity.flush(now) > 0 and time.monotonic() < budget:
                pass
            self._last_flush = now
            # After Redis was emptied: bring its subjects back, so that new ones need no
            # database read on the way in (until then each missing one is read on arrival).
            while not self.activity.restore(now) and time.monotonic() < budget:
                pass
        if self.store.needs_rebuild():
            added = rebuild_timers(self.sessions, self.store, self.registry)
            self.store.mark_rebuilt()
            log.warning("timers.store_rebuilt", added=added)
            self._last_sweep = now
        elif self._last_sweep is None or now - self._last_sweep >= self.sweep_interval:
            added = rebuild_timers(self.sessions, self.store, self.registry, now - SWEEP_GRACE)
            if added:
                log.warning("timers.swept", added=added)
            self._last_sweep = now

    def run_once(self) -> int:
        """One round: maintenance, one claim, one hand-over. Returns how many were claimed."""
        now = self.clock.now()
        self.maintain(now)
        claimed = self.store.claim_due(now, self.batch, self.lease)
        if claimed:
            self.executor.submit(claimed, now)
        return len(claimed)

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop` is set; a full batch goes round again at once."""
        log.info("scheduler.started", batch=self.batch, lease=self.lease.total_seconds())
        while not stop.is_set():
            try:
                claimed = self.run_once()
            except Exception:
                log.exception("scheduler.round_failed")
                claimed = 0
            if claimed < self.batch:
                stop.wait(self.poll.total_seconds())
        log.info("scheduler.stopped")
