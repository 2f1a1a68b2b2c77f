"""Time that passes on a manual clock: every timer of a runtime fires at its due instant,
through the real scheduler and handlers, without waiting for real time."""

from __future__ import annotations

from datetime import datetime, timedelta

from reengage.adapters.clock import ManualClock
from reengage.runtime import Runtime
from reengage.timers.executors import InlineExecutor
from reengage.timers.scheduler import Scheduler


class TimeTravel:
    def __init__(
        self, runtime: Runtime, clock: ManualClock, step: timedelta = timedelta(seconds=1)
    ) -> None:
        """`step`: the smallest jump. Real schedulers poll; a jump of at least `step` keeps a
        timer that is rescheduled for "now" from holding time still."""
        self.runtime, self.clock, self.step = runtime, clock, step
        self.scheduler = Scheduler(
            sessions=runtime.sessions,
            store=runtime.timers,
            executor=InlineExecutor(runtime),
            registry=runtime.registry,
            clock=clock,
            activity=runtime.activity,
        )

    def drain(self) -> int:
        """Fire everything due now (and what that makes due now); return how many fired."""
        fired = 0
        while ran := self.scheduler.run_once():
            fired += ran
        return fired

    def wait(self, delta: timedelta) -> None:
        """Let `delta` pass, jumping from one due timer to the next."""
        self.until(self.clock.now() + delta)

    def until(self, end: datetime, *, stop_when_quiet: bool = False) -> None:
        """Move the clock to `end`, firing each timer on its time on the way (or stop at the
        last timer, with `stop_when_quiet`)."""
        while True:
            self.drain()
            due = self.runtime.timers.next_due()
            now = self.clock.now()
            if now >= end or (due is None and stop_when_quiet):
                return
            self.clock.set(min(end, max(due or end, now + self.step)))
