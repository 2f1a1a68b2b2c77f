"""When a conversation counts as quiet, and what to do when its timer fires."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reengage.domain.activity import ConversationClock, ConversationStatus, subject_key
from reengage.domain.timer import Payload, Purpose, Timer, timer_key


@dataclass(frozen=True, slots=True)
class MarkInactive:
    """The conversation has been quiet since `since`: record it."""

    since: datetime
    seq: int


@dataclass(frozen=True, slots=True)
class Skip:
    """Nothing to do; `reason` says why (for the log)."""

    reason: str


InactivityDecision = MarkInactive | Skip


def inactivity_key(bot_id: int, user_id: str) -> str:
    """The timer key of a bot user's inactivity check (one per subject)."""
    return timer_key(Purpose.INACTIVITY, subject_key(bot_id, user_id))


# A silence whose activity Redis holds and PostgreSQL does not yet (another process took it
# to write behind and has not committed) looks again this soon, at most this many times.
WRITE_BEHIND_RETRY = timedelta(seconds=1)
WRITE_BEHIND_TRIES = 60


def not_written_yet(hot_seq: int | None, written_seq: int | None, seq: int, deferred: int) -> bool:
    """The silence of activity `seq` finds the database behind it — no conversation, or an
    older version — while the hot store holds exactly that version: its write behind is in
    flight elsewhere, and the silence must wait for it rather than be dropped. Not when the
    hot store holds a newer version (that activity's own timer follows) or none (nothing is
    on its way), nor once it was `deferred` `WRITE_BEHIND_TRIES` times already."""
    behind = written_seq is None or written_seq < seq
    return hot_seq == seq and behind and deferred < WRITE_BEHIND_TRIES


def inactivity_timer(
    bot_id: int, user_id: str, seq: int, due_at: datetime, deferred: int = 0
) -> Timer:
    payload: Payload = {"bot_id": bot_id, "user_id": user_id, "seq": seq}
    if deferred:
        payload["deferred"] = deferred  # times it waited for its activity's write behind
    return Timer(
        key=inactivity_key(bot_id, user_id),
        purpose=Purpose.INACTIVITY,
        due_at=due_at,
        version=seq,
        payload=payload,
    )


def next_inactivity_timer(
    bot_id: int,
    user_id: str,
    clock: ConversationClock,
    threshold: timedelta | None,
    after_close: timedelta | None = None,
) -> Timer | None:
    """The one pending inactivity timer the subject should have, if any."""
    due = next_wake(clock, threshold, after_close)
    return None if due is None else inactivity_timer(bot_id, user_id, clock.activity_seq, due)


def next_wake(
    clock: ConversationClock, threshold: timedelta | None, after_close: timedelta | None
) -> datetime | None:
    """When the subject's timer fires: `threshold` after the last activity; once closed,
    `after_close` after the later of the last activity and the close (recovery's silence)."""
    if clock.last_activity_at is None:
        return None
    if clock.status is ConversationStatus.CLOSED:
        if after_close is None:
            return None
        return max(clock.last_activity_at, clock.closed_at or clock.last_activity_at) + after_close
    return None if threshold is None else clock.last_activity_at + threshold


def decide_inactivity(
    clock: ConversationClock, timer_seq: int, threshold: timedelta | None, now: datetime
) -> InactivityDecision:
    """Whether a fired inactivity timer still stands against the conversation's state."""
    if clock.status is ConversationStatus.CLOSED:
        return Skip("conversation_closed")
    if clock.activity_seq != timer_seq:
        return Skip("version_mismatch")
    if threshold is None or clock.last_activity_at is None:
        return Skip("disabled")
    if now < clock.last_activity_at + threshold:
        return Skip("not_due")
    return MarkInactive(since=clock.last_activity_at, seq=clock.activity_seq)
