"""Execute claimed timers: one transaction each, acknowledged only after it commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from reengage.domain.timer import ClaimedTimer, Timer
from reengage.ports import TimerStore
from reengage.services.timer_registry import Registry

log = structlog.get_logger(__name__)

# A timer that keeps failing is given up after this many claims (and logged), so one poisoned
# row cannot occupy a scheduler forever.
MAX_ATTEMPTS = 10


@dataclass(slots=True)
class FireReport:
    executed: list[ClaimedTimer] = field(default_factory=list)
    failed: list[ClaimedTimer] = field(default_factory=list)


def fire_timers(
    sessions: sessionmaker[Session],
    store: TimerStore,
    registry: Registry,
    claimed: Sequence[ClaimedTimer],
    now: datetime,
) -> FireReport:
    """Run each timer's handler; a handler is idempotent, so a re-run after a crash is safe."""
    report = FireReport()
    follow_ups: list[Timer] = []
    for item in claimed:
        spec = registry.get(item.timer.purpose)
        if spec is None:
            log.error("timer.unknown_purpose", key=item.timer.key, purpose=item.timer.purpose)
            report.executed.append(item)
            continue
        try:
            with sessions.begin() as session:
                follow_ups += spec.handle(session, item.timer, now)
                after_commit = session.info.pop("after_commit", [])
            # Work a handler wants done only once its transaction committed (publishing the
            # timers of deliveries it enqueued, starting a fallback flow, ...).
            for action in after_commit:
                follow_ups += action() or []
        except Exception:
            log.exception("timer.failed", key=item.timer.key, attempts=item.attempts)
            if item.attempts >= MAX_ATTEMPTS:
                log.error("timer.abandoned", key=item.timer.key, attempts=item.attempts)
                report.executed.append(item)
            else:
                report.failed.append(item)
            continue
        report.executed.append(item)
    store.ack(report.executed)
    store.schedule(follow_ups)
    return report
