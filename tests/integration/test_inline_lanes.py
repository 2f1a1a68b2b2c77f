"""Embedded mode: the timers of a queue set apart (events out) run on a lane of their own,
so one that hangs (a receiver answering slowly) never holds the others, and are still
acknowledged once done."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from reengage.adapters.clock import ManualClock
from reengage.domain.timer import Timer
from reengage.timers.engine import TimerEngine
from reengage.timers.executors import InlineExecutor
from reengage.timers.handler import NOTHING, Handlers, Outcome
from reengage.timers.memory_store import InMemoryTimerStore

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


@dataclass
class Recorder:
    purpose: str
    queue: str
    release: threading.Event | None = None
    ran: list[str] = field(default_factory=list)

    def handle(self, timer: Timer, now: datetime) -> Outcome:
        if self.release is not None:
            assert self.release.wait(10)
        self.ran.append(timer.key)
        return NOTHING

    def pending(self, session: Session, *args: object) -> list[tuple[int, Timer]]:
        return []


@dataclass
class Engined:
    timer_engine: TimerEngine
    clock: ManualClock


def test_a_hanging_event_send_never_holds_the_messages() -> None:
    store, release = InMemoryTimerStore(), threading.Event()
    events = Recorder("event", "events", release)
    messages = Recorder("delivery", "timers")
    handlers: Handlers = {"event": events, "delivery": messages}
    executor = InlineExecutor(
        Engined(TimerEngine(store, handlers), ManualClock(NOW)), apart=("events",)
    )
    store.schedule([Timer("event:1", "event", NOW), Timer("delivery:1", "delivery", NOW)])
    claimed = store.claim_due(NOW, 10, timedelta(seconds=30))
    executor.submit(claimed, NOW)  # returns while the event's send still hangs
    assert (messages.ran, events.ran) == (["delivery:1"], [])
    assert store.in_flight(NOW) == 1  # the event's timer: not acknowledged before it is done
    release.set()
    executor.close()
    assert events.ran == ["event:1"]
    assert (store.in_flight(NOW), store.count()) == (0, 0)


def test_without_lanes_everything_runs_in_line() -> None:
    store = InMemoryTimerStore()
    events, messages = Recorder("event", "events"), Recorder("delivery", "timers")
    executor = InlineExecutor(
        Engined(TimerEngine(store, {"event": events, "delivery": messages}), ManualClock(NOW))
    )
    store.schedule([Timer("event:1", "event", NOW), Timer("delivery:1", "delivery", NOW)])
    executor.submit(store.claim_due(NOW, 10, timedelta(seconds=30)), NOW)
    assert (messages.ran, events.ran) == (["delivery:1"], ["event:1"])
    assert store.count() == 0
