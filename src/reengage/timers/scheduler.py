"""The scheduler: claim due timers in batches and hand them to an executor."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session, sessionmaker

from reengage import metrics
from reengage.adapters.outage import Backoff, Outage
from reengage.metrics import TIMERS_CLAIMED, TIMERS_IN_FLIGHT
from reengage.ports import ActivityStore, Clock, TimerExecutor, TimerStore, Wakeups
from reengage.timers.handler import Handlers
from reengage.timers.rebuild import rebuild_timers
from reengage.timers.write_behind import WriteBehind

log = structlog.get_logger(__name__)

# A timer is swept back in only when this overdue: younger ones may be in flight between a
# commit and their publication to the store.
SWEEP_GRACE = timedelta(seconds=5)
# Seconds of flushing per round at most; the rest waits for the next round.
FLUSH_BUDGET = 0.25
# How long a stopping scheduler waits for each write-behind thread's batch (real seconds).
FLUSHER_JOIN = 10.0
# The longest a scheduler sleeps (real seconds), whatever it expects next.
MAX_IDLE = 1.0
# Slept past a due instant, so the claim finds the timer due (scores are milliseconds).
WAKE_MARGIN = 0.001
# The shortest sleep after a round that claimed something (real seconds): timers due a
# millisecond apart are claimed together, not one round each.
NAP = 0.005
# How often a sleeping scheduler looks at its stop signal (real seconds).
STOP_CHECK = 0.25
# After a failed round (real seconds): the first wait, doubled after each failure up to the
# cap. The cap bounds how late the scheduler notices that the store is back (one connection
# attempt every few seconds costs a recovering server nothing); lines are logged per change.
BACKOFF_FIRST = 0.1
BACKOFF_CAP = 5.0
# Seconds over which the executors' pace is measured.
RATE_WINDOW = 1.0
# How often a scheduler counts the due timers and the write-behind for its gauges (real
# seconds): a few cheap reads a second at most, never one per claim.
GAUGE_INTERVAL = 1.0


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
        prune: Callable[[datetime], object] | None = None,
        prune_interval: timedelta = timedelta(hours=1),
        write_behind: WriteBehind | None = None,
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
        # Threads of its own that write activity behind while `run` runs; without them the
        # loop flushes in its maintenance, `FLUSH_BUDGET` at a time.
        self.write_behind = write_behind
        self._flushing = False  # the threads are running
        self._last_sweep: datetime | None = None
        self._last_flush: datetime | None = None
        # Retention (`services.retention`): past history dropped, coming partitions made.
        self.prune = prune
        self.prune_interval = prune_interval
        self._last_prune: datetime | None = None
        # Measured in real seconds: an accelerated clock's lease lasts less real time.
        self.bound = ClaimBound(clock.real_seconds(lease), batch)
        # The last round claimed less than was due: its executors are behind.
        self.held = False
        self._gauged: float | None = None  # when the gauges were last set (monotonic)
        # When this scheduler last saw no activity waiting to be written (monotonic).
        self._written_up: float = time.monotonic()

    def maintain(self, now: datetime) -> None:
        """Flush hot activity to the database; rebuild an emptied timer store; sweep in timers
        lost between commit and publication."""
        if self.activity is not None and (
            self._last_flush is None or now - self._last_flush >= self.flush_interval
        ):
            # Bounded: a burst of new subjects must not starve the claiming of due timers.
            budget = time.monotonic() + FLUSH_BUDGET
            while not self._flushing and (flushed := self.activity.flush(now)) > 0:
                metrics.WRITE_BEHIND_FLUSHED.inc(flushed)
                if time.monotonic() >= budget:
                    break
            self._last_flush = now
            # Quiet subjects already in the database leave Redis (bounded memory).
            while (gone := self.activity.expire_idle(now)) > 0:
                metrics.HOT_STATE_EXPIRED.inc(gone)
                if time.monotonic() >= budget:
                    break
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
        if self.prune is not None and (
            self._last_prune is None or now - self._last_prune >= self.prune_interval
        ):
            self._last_prune = now
            try:
                self.prune(now)
            except Exception:  # a busy table is pruned next time; claiming goes on
                log.warning("retention.prune_failed", exc_info=True)

    def run_once(self) -> int:
        """One round: maintenance, one claim (bounded by what is still in flight), one
        hand-over. Returns how many were claimed."""
        now = self.clock.now()
        self.maintain(now)
        in_flight = self.store.in_flight(now)
        room = min(self.batch, self.bound.room(in_flight, time.monotonic()))
        claimed = self.store.claim_due(now, room, self.lease) if room else []
        self.bound.claimed(in_flight, len(claimed))
        TIMERS_IN_FLIGHT.set(in_flight + len(claimed))
        again = sum(1 for c in claimed if c.attempts > 1)
        TIMERS_CLAIMED.labels("first").inc(len(claimed) - again)
        TIMERS_CLAIMED.labels("again").inc(again)
        self.held = room < self.batch and len(claimed) == room
        if claimed:
            self.executor.submit(claimed, now)
        self.gauge(now)
        return len(claimed)

    def gauge(self, now: datetime) -> None:
        """Set the backlog and write-behind gauges, at most once per `GAUGE_INTERVAL`: the
        timers due and left unclaimed by this round, the oldest's wait; what activity waits
        to be written to the database, and for how long at most."""
        at = time.monotonic()
        if self._gauged is not None and at - self._gauged < GAUGE_INTERVAL:
            return
        self._gauged = at
        try:
            backlog = self.store.backlog(now)
            unflushed = self.activity.unflushed() if self.activity is not None else 0
        except Exception:  # a gauge left as it was never fails the round
            log.warning("scheduler.gauge_failed", exc_info=True)
            return
        metrics.TIMERS_DUE.set(backlog.due)
        metrics.TIMERS_OLDEST_DUE_AGE.set(backlog.oldest_age(now))
        if not unflushed:
            self._written_up = at
        metrics.WRITE_BEHIND_PENDING.set(unflushed)
        metrics.WRITE_BEHIND_LAG.set(at - self._written_up)

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop` is set: a full batch goes round again at once; otherwise sleep
        until the next due timer or maintenance, woken early by an earlier schedule. A failed
        round (Redis or the database away) waits a capped exponential backoff, and an outage
        is logged once when it starts and once when it ends (`Outage`)."""
        log.info("scheduler.started", batch=self.batch, lease=self.lease.total_seconds())
        wakeups: Wakeups | None = None
        outage = Outage("scheduler", Backoff(BACKOFF_FIRST, BACKOFF_CAP))
        done = threading.Event()  # the write-behind threads' stop: after the loop's last round
        flushers: list[threading.Thread] = []
        if self.write_behind is not None and self.activity is not None:
            flushers = self.write_behind.start(done)
            self._flushing = True
        try:
            while not stop.is_set():
                try:
                    claimed = self.run_once()
                    if self.held:  # the executors are behind: look again shortly
                        stop.wait(self.poll.total_seconds())
                    elif claimed < self.batch:
                        wakeups = wakeups or self.store.wakeups()
                        self._sleep(stop, wakeups, claimed > 0)
                except Exception as exc:
                    wait = outage.failed(exc)
                    if wakeups is not None:  # listen anew: its connection may be gone
                        _close_quietly(wakeups)
                        wakeups = None
                    stop.wait(wait)
                else:
                    outage.succeeded()
        finally:
            if wakeups is not None:
                _close_quietly(wakeups)
            done.set()
            for thread in flushers:  # a batch cut short stays in flight, taken again later
                thread.join(FLUSHER_JOIN)
            self._flushing = False
        log.info("scheduler.stopped")

    def _sleep(self, stop: threading.Event, wakeups: Wakeups, worked: bool) -> None:
        wakeups.arm()  # before reading the next due instant: no schedule slips in between
        now = self.clock.now()
        until = self.next_round(now)
        seconds = min(MAX_IDLE, self.clock.real_seconds(until - now) + WAKE_MARGIN)
        if worked:  # a steady trickle is claimed a few milliseconds' worth at a time
            seconds = max(seconds, NAP)
        if not wakeups.complete:
            seconds = min(seconds, self.poll.total_seconds())
        end = time.monotonic() + seconds
        while not stop.is_set() and (left := end - time.monotonic()) > 0:
            if wakeups.wait(until, min(left, STOP_CHECK)):
                return

    def next_round(self, now: datetime) -> datetime:
        """When this scheduler has something to do: the next due timer, flush or sweep."""
        times = [self._last_sweep + self.sweep_interval if self._last_sweep else now]
        if self.activity is not None:
            times.append(self._last_flush + self.flush_interval if self._last_flush else now)
        if (due := self.store.next_due()) is not None:
            times.append(due)
        return min(times)


def _close_quietly(wakeups: Wakeups) -> None:
    try:
        wakeups.close()
    except Exception:  # already broken: nothing left to close
        log.debug("scheduler.wakeups_close_failed", exc_info=True)


@dataclass(slots=True)
class ClaimBound:
    """How many claimed timers may be in flight at once: what the executors finish in half a
    lease at the rate they have been finishing them, and never less than one batch. A claim
    beyond that would wait in a queue until its lease ran out, and be claimed again."""

    lease: float  # seconds
    floor: int
    rate: float = 0.0  # timers finished per second, smoothed
    _after: int | None = None  # in flight right after the last claim
    _since: float | None = None
    _done: int = 0
    _busy: bool = False

    @property
    def limit(self) -> int:
        return max(self.floor, int(self.rate * self.lease / 2))

    def room(self, in_flight: int, at: float) -> int:
        """How many more may be claimed now, with `in_flight` outstanding (`at`: seconds)."""
        if self._after is not None:
            self._done += max(0, self._after - in_flight)
        self._busy = self._busy or in_flight > 0
        if self._since is None:
            self._since = at
        elif at - self._since >= RATE_WINDOW:
            if self._done or self._busy:  # an idle window says nothing about the rate
                measured = self._done / (at - self._since)
                self.rate = (self.rate + measured) / 2 if self.rate else measured
            self._since, self._done, self._busy = at, 0, in_flight > 0
        return max(0, self.limit - in_flight)

    def claimed(self, in_flight: int, count: int) -> None:
        self._after = in_flight + count
