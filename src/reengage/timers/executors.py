"""Executors: run claimed timers in this process, or send them to Celery workers."""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from datetime import datetime
from queue import SimpleQueue
from typing import Any, Protocol

import structlog
from celery import Celery

from reengage.adapters.outage import one_line
from reengage.domain.timer import ClaimedTimer, Timer
from reengage.metrics import TIMER_LATENESS, TIMERS_FIRED
from reengage.ports import Clock
from reengage.timers.engine import TimerEngine, deal

log = structlog.get_logger(__name__)

FIRE_TIMERS_TASK = "engine.fire_timers"
# Timers per task message: small enough that a killed worker strands little work,
# large enough that 1,000 timers/s is a few dozen messages.
TASK_CHUNK = 50


class Engined(Protocol):
    """What an executor runs timers with (the runtime)."""

    @property
    def timer_engine(self) -> TimerEngine:
        """The store and the handlers."""
        ...

    @property
    def clock(self) -> Clock:
        """The time lateness is measured in."""
        ...


def claimed_to_wire(item: ClaimedTimer) -> dict[str, Any]:
    t = item.timer
    return {
        "key": t.key,
        "purpose": t.purpose,
        "due_at": t.due_at.isoformat(),
        "version": t.version,
        "payload": t.payload,
        "token": item.token,
        "attempts": item.attempts,
    }


def claimed_from_wire(data: dict[str, Any]) -> ClaimedTimer:
    timer = Timer(
        data["key"],
        data["purpose"],
        datetime.fromisoformat(data["due_at"]),
        int(data["version"]),
        dict(data["payload"]),
    )
    return ClaimedTimer(timer, data["token"], int(data["attempts"]))


def observe(claimed: Sequence[ClaimedTimer], executed_at: datetime) -> None:
    for item in claimed:
        TIMERS_FIRED.labels(item.timer.purpose).inc()
        TIMER_LATENESS.observe(max(0.0, (executed_at - item.timer.due_at).total_seconds()))


class InlineExecutor:
    """Embedded mode: run timers right here, in the scheduler's thread. The timers of the
    queues in `apart` (events out) run on a thread of their own per queue, as they would on
    workers of their own queue: a receiver that answers slowly never holds the messages, and
    event sends never wait in front of them."""

    def __init__(
        self, runtime: Engined, clock: Clock | None = None, apart: Collection[str] = ()
    ) -> None:
        self.engine = runtime.timer_engine
        self.clock = clock or runtime.clock
        self.lanes = {queue: Lane(self.engine, self.clock, queue) for queue in apart}

    def submit(self, claimed: Sequence[ClaimedTimer], now: datetime) -> None:
        here: list[ClaimedTimer] = []
        elsewhere: dict[str, list[ClaimedTimer]] = {}
        for item in claimed:
            handler = self.engine.handlers.get(item.timer.purpose)
            queue = handler.queue if handler is not None else ""
            if queue in self.lanes:
                elsewhere.setdefault(queue, []).append(item)
            else:
                here.append(item)
        for queue, items in elsewhere.items():
            self.lanes[queue].put(items)
        if here:
            report = self.engine.fire(here, now)
            observe(report.executed, self.clock.now())

    def close(self) -> None:
        """Stop the lanes once what they were given is done."""
        for lane in self.lanes.values():
            lane.close()


class Lane:
    """One queue's timers, fired in order on a thread of their own, each chunk at the time it
    is taken up (unacknowledged, a chunk that waited past its lease is claimed again)."""

    def __init__(self, engine: TimerEngine, clock: Clock, queue: str) -> None:
        self.engine, self.clock = engine, clock
        self._work: SimpleQueue[list[ClaimedTimer] | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"lane-{queue}", daemon=True)
        self._thread.start()

    def put(self, items: list[ClaimedTimer]) -> None:
        self._work.put(items)

    def close(self, timeout: float = 30.0) -> None:
        self._work.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (items := self._work.get()) is not None:
            try:
                report = self.engine.fire(items, self.clock.now())
                observe(report.executed, self.clock.now())
            except Exception as exc:  # unacknowledged: the timers run again after their lease
                log.warning("timer.lane_failed", timers=len(items), error=one_line(exc))


class CeleryExecutor:
    """Distributed mode: each chunk of timers becomes one task on its queue: the one its
    payload names (a recovery campaign's deliveries), else its purpose's."""

    def __init__(self, app: Celery, runtime: Engined) -> None:
        self.app = app
        self.handlers = runtime.timer_engine.handlers

    def submit(self, claimed: Sequence[ClaimedTimer], now: datetime) -> None:
        by_queue: dict[str, list[ClaimedTimer]] = {}
        for item in claimed:
            handler = self.handlers.get(item.timer.purpose)
            queue = item.timer.payload.get("queue") or (handler.queue if handler else "timers")
            by_queue.setdefault(str(queue), []).append(item)
        for queue, items in by_queue.items():
            for chunk in deal(items, TASK_CHUNK):
                wire = [claimed_to_wire(item) for item in chunk]
                self.app.send_task(FIRE_TIMERS_TASK, args=[wire, now.isoformat()], queue=queue)
