"""What each timer purpose does when it fires, and where its pending timers are rebuilt from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from reengage.domain.timer import Purpose, Timer
from reengage.ports import ActivityStore, ChannelProvider, Clock, TimerStore
from reengage.services import inactivity, recovery_episode
from reengage.services.auto_delete import handle_auto_delete, pending_delete_timers
from reengage.services.chat_action import handle_chat_action
from reengage.services.deliver import (
    DeliveryDeps,
    handle_delivery_timer,
    pending_delivery_timers,
)
from reengage.services.flows import Record
from reengage.services.inbound_message import (
    InboundDeps,
    handle_inbound,
    pending_inbound_timers,
)
from reengage.services.silence import SilenceDeps, handle_silence

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


def default_registry(
    *,
    sessions: sessionmaker[Session],
    channels: ChannelProvider,
    timers: TimerStore,
    activity: ActivityStore,
    default_threshold: timedelta,
    language: str,
    record: Record,
    clock: Clock | None = None,
) -> Registry:
    silence = SilenceDeps(activity, default_threshold, language, record)
    return {
        Purpose.INBOUND: PurposeSpec(
            handle=partial(handle_inbound, deps=InboundDeps(sessions, activity, record, language)),
            pending=pending_inbound_timers,
        ),
        Purpose.INACTIVITY: PurposeSpec(
            handle=partial(handle_silence, deps=silence),
            pending=inactivity.pending_inactivity_timers,
        ),
        Purpose.RECOVERY_STEP: PurposeSpec(
            handle=partial(recovery_episode.handle_step, activity=activity),
            pending=recovery_episode.pending_step_timers,
            queue=recovery_episode.QUEUE,
        ),
        Purpose.AUTO_DELETE: PurposeSpec(
            handle=partial(handle_auto_delete, sessions=sessions, channels=channels),
            pending=pending_delete_timers,
        ),
        Purpose.CHAT_ACTION: PurposeSpec(
            handle=partial(
                handle_chat_action, sessions=sessions, channels=channels, activity=activity
            ),
            pending=_nothing_to_rebuild,
        ),
        Purpose.DELIVERY: PurposeSpec(
            handle=partial(
                handle_delivery_timer,
                deps=DeliveryDeps(sessions, channels, timers, activity, clock),
            ),
            pending=pending_delivery_timers,
        ),
    }


def _nothing_to_rebuild(
    session: Session, due_before: datetime | None, after_id: int, limit: int
) -> list[tuple[int, Timer]]:
    """Chat actions are cosmetic: one lost with the timer store is not brought back."""
    return []
