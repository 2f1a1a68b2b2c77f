"""What each timer purpose does when it fires, and where its pending timers are rebuilt from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.orm import Session

from reengage.domain.timer import Purpose, Timer
from reengage.ports import ActivityStore
from reengage.services import inactivity

Handler = Callable[[Session, Timer, datetime], list[Timer]]
PendingSource = Callable[[Session, datetime | None, int, int], list[tuple[int, Timer]]]


@dataclass(frozen=True, slots=True)
class PurposeSpec:
    """`handle` runs inside the executor's transaction and returns follow-up timers;
    `pending` pages, from the database, the timers that should exist as (row id, timer)."""

    handle: Handler
    pending: PendingSource
    queue: str = "timers"


Registry = dict[str, PurposeSpec]


def default_registry(default_threshold: timedelta, activity: ActivityStore) -> Registry:
    return {
        Purpose.INACTIVITY: PurposeSpec(
            handle=partial(
                inactivity.handle_inactivity,
                activity=activity,
                default_threshold=default_threshold,
            ),
            pending=inactivity.pending_inactivity_timers,
        ),
    }
