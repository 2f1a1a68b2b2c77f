"""Put back into the timer store what the database says must be pending."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from reengage.ports import TimerStore
from reengage.timers.handler import Handlers

log = structlog.get_logger(__name__)

PAGE = 5000


def rebuild_timers(
    sessions: sessionmaker[Session],
    store: TimerStore,
    handlers: Handlers,
    due_before: datetime | None = None,
) -> int:
    """Add every missing timer (only those due before `due_before`, if given); never replaces.

    With `due_before=None` this is the full rebuild after the store lost its contents; with a
    cut-off it is the sweep that repairs a timer lost between a commit and its publication.
    """
    added = 0
    for purpose, handler in handlers.items():
        after = 0
        while True:
            with sessions() as session:
                page = handler.pending(session, due_before, after, PAGE)
            if not page:
                break
            added += store.schedule_missing([timer for _, timer in page])
            after = page[-1][0]
        log.debug("timers.rebuilt", purpose=purpose, added=added)
    return added
