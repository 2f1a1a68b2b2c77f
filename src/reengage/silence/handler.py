"""What happens when a contact goes quiet: the one timer per subject fires here.

Each feature looks at the silence and either acts (once per silence: its effects carry
dedup keys) or says when it next wants to look. The earliest of those becomes the follow-up
timer, under the same key and version: any new activity replaces it.

One voice: while a timeout's stages run or a human has the conversation, recovery waits;
its threshold counts from the later of the last activity, the timeout's end and the close.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import Bot, Contact, Conversation
from reengage.domain import inactivity
from reengage.domain.activity import ConversationStatus
from reengage.domain.timer import Purpose, Timer
from reengage.ports import ActivityStore
from reengage.services.record_activity import Record
from reengage.silence import episodes
from reengage.silence.inactivity import detect_inactivity, pending_inactivity_timers
from reengage.silence.timeout import TimeoutDeps, run_timeout
from reengage.timers.handler import FollowUps, Outcome

log = structlog.get_logger(__name__)


def latest_conversation(session: Session, bot_id: int, user_id: str) -> Conversation | None:
    """The subject's newest conversation (open, or the one just closed), locked for this
    transaction."""
    return session.scalar(
        select(Conversation)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Contact.bot_id == bot_id, Contact.external_id == user_id)
        .order_by(Conversation.id.desc())
        .limit(1)
        .with_for_update()
    )


@dataclass(frozen=True, slots=True)
class SilenceHandler:
    """The `inactivity` timer of a subject (bot + user)."""

    sessions: sessionmaker[Session]
    activity: ActivityStore
    default_threshold: timedelta
    language: str
    record: Record
    purpose: str = Purpose.INACTIVITY
    queue: str = "timers"

    def handle(self, timer: Timer, now: datetime) -> Outcome:
        bot_id, user_id = int(timer.payload["bot_id"] or 0), str(timer.payload["user_id"])
        seq = int(timer.payload["seq"] or 0)
        hot = self.activity.hot_seq(bot_id, user_id)
        if hot is not None and hot != seq:
            log.debug("silence.skipped", bot_id=bot_id, user_id=user_id, reason="newer_activity")
            return Outcome()
        self.activity.flush_subject(bot_id, user_id, now)  # before this transaction begins
        follow = FollowUps()
        with self.sessions.begin() as session:
            conv = latest_conversation(session, bot_id, user_id)
            if conv is None or conv.activity_seq != seq or conv.last_activity_at is None:
                log.debug("silence.skipped", bot_id=bot_id, user_id=user_id, reason="version")
                return Outcome()
            wake = self._features(session, conv, now, follow)
            conv.inactivity_due_at = wake
        if wake is not None:
            follow.timers.append(inactivity.inactivity_timer(bot_id, user_id, seq, wake))
        return follow.outcome()

    def _features(
        self, session: Session, conv: Conversation, now: datetime, follow: FollowUps
    ) -> datetime | None:
        """Run what is due; the earliest time any feature wants to look again."""
        assert conv.last_activity_at is not None
        wakes: list[datetime | None] = []
        since, recovery_may_start = conv.last_activity_at, True
        if conv.status != ConversationStatus.CLOSED.value:
            bot = session.get_one(Bot, conv.bot_id)
            wakes.append(detect_inactivity(session, conv, bot, now, self.default_threshold))
            deps = TimeoutDeps(self.activity, self.language, self.record)
            timeout = run_timeout(session, conv, bot, now, deps, follow)
            wakes.append(timeout.wake)
            if timeout.pending or conv.status == ConversationStatus.HANDOFF.value:
                recovery_may_start = False  # someone else speaks to this contact
            elif timeout.ended_at is not None:
                since = max(since, timeout.ended_at)
        if conv.status == ConversationStatus.CLOSED.value and conv.closed_at is not None:
            since = max(since, conv.closed_at)
        if recovery_may_start:
            wakes.append(episodes.start_episode(session, conv, since, now, follow))
        due = [w for w in wakes if w is not None]
        return min(due) if due else None

    def pending(
        self, session: Session, due_before: datetime | None, after_id: int, limit: int
    ) -> list[tuple[int, Timer]]:
        return pending_inactivity_timers(session, due_before, after_id, limit)
