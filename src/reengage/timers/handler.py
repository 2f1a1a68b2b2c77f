"""The handler contract: what a timer purpose does when one of its timers fires.

A handler is a named object, registered in the composition root (`reengage.runtime`). It
does its work in its own transaction(s) and returns one `Outcome`: the follow-up timers to
schedule and the effects that must follow its commit. The engine (`timers.engine`) does
both, in one place, after the handler returned — never inside it — and acknowledges the
timer after them. A handler is idempotent: a timer whose worker died runs again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session

from reengage.domain.timer import Timer


class Effect(Protocol):
    """Work that must follow a handler's commit (record the activity a decision produced,
    mark an outbox row done); it may return more timers. Effects are named classes, not
    lambdas, so a reader can follow them."""

    def __call__(self) -> Sequence[Timer]:
        """Do it; return timers to schedule."""
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a handler's run leads to."""

    timers: Sequence[Timer] = ()
    effects: Sequence[Effect] = ()
    cancel: Sequence[str] = ()  # timer keys that no longer stand


NOTHING = Outcome()


@dataclass(slots=True)
class FollowUps:
    """Collects an `Outcome` while a handler's decisions are made, deep in its helpers."""

    timers: list[Timer] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)

    def outcome(self) -> Outcome:
        return Outcome(tuple(self.timers), tuple(self.effects), tuple(self.cancel))


class TimerHandler(Protocol):
    """One timer purpose: its name (the `purpose` its timers carry), its worker queue, what
    it does when a timer fires, and where its pending timers are rebuilt from."""

    @property
    def purpose(self) -> str:
        """The purpose its timers carry (`delivery`, `inactivity`, ...)."""
        ...

    @property
    def queue(self) -> str:
        """The worker queue its timers run on in distributed mode."""
        ...

    def handle(self, timer: Timer, now: datetime) -> Outcome:
        """Run the timer's work (idempotent); say what follows it."""
        ...

    def pending(
        self, session: Session, due_before: datetime | None, after_id: int, limit: int
    ) -> list[tuple[int, Timer]]:
        """Page, from the database, the timers that should exist, as (row id, timer)."""
        ...


@runtime_checkable
class BatchHandler(Protocol):
    """A handler that also takes many timers of its purpose at once: it loads what they need
    together, decides for each as it would alone, and writes them in one transaction. One
    outcome per timer, in order. `handle(t)` is `handle_batch([t])[0]`."""

    @property
    def purpose(self) -> str: ...

    def handle_batch(self, timers: Sequence[Timer], now: datetime) -> list[Outcome]:
        """Run the timers' work together (idempotent); say what follows each."""
        ...


Handlers = dict[str, TimerHandler]
