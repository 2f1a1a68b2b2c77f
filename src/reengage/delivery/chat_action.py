"""The "typing…" a user sees while a block waits out its delay.

A block with a delay gets a `chat_action` timer at the start of its wait. Each firing shows
the action once (Telegram keeps it up to 5 seconds) and re-arms itself until the message is
due, so no worker thread is held for the length of the delay. The action is cosmetic: it is
never persisted, never retried, and lost timers are not rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import Contact, Delivery
from reengage.delivery.outcome import current_seq
from reengage.domain.outbound import CHAT_ACTION_REPEAT, chat_action_for, message_from_json
from reengage.domain.timer import Purpose, Timer, timer_key
from reengage.ports import ActivityStore, ChannelProvider
from reengage.timers.handler import NOTHING, Outcome

log = structlog.get_logger(__name__)


def chat_action_timer(
    delivery_id: int, due_at: datetime, until: datetime, after: int | None = None
) -> Timer:
    """Show the chat action for `delivery_id` from `due_at` until `until` (its send time),
    once the delivery `after` (the block before it) is no longer pending."""
    return Timer(
        timer_key(Purpose.CHAT_ACTION, str(delivery_id)),
        Purpose.CHAT_ACTION,
        due_at,
        0,
        {"delivery_id": delivery_id, "until": until.isoformat(), "after": after},
    )


@dataclass(frozen=True, slots=True)
class ChatActionHandler:
    """Show the action once (Telegram keeps it up to 5 s) and come back until the block is
    due; stop when it no longer will be sent."""

    sessions: sessionmaker[Session]
    channels: ChannelProvider
    activity: ActivityStore
    purpose: str = Purpose.CHAT_ACTION
    queue: str = "timers"

    def handle(self, timer: Timer, now: datetime) -> Outcome:
        delivery_id = int(timer.payload["delivery_id"] or 0)
        until = datetime.fromisoformat(str(timer.payload["until"]))
        after = _int(timer.payload.get("after"))
        if now >= until:
            return NOTHING
        with self.sessions() as reading:
            row = reading.get(Delivery, delivery_id)
            if row is None or row.status != "scheduled":
                return NOTHING
            contact = reading.get_one(Contact, row.contact_id)
            if contact.blocked_at is not None:
                return NOTHING
            seq = current_seq(reading, contact, self.activity)
            if row.guard_seq is not None and seq != row.guard_seq:
                return NOTHING
            previous = reading.get(Delivery, after) if after is not None else None
            if previous is not None and previous.status in ("scheduled", "sending"):
                # The block before is still going out: its message would clear the action.
                soon = now + CHAT_ACTION_REPEAT / 4
                return Outcome([chat_action_timer(delivery_id, soon, until, after)])
            action = chat_action_for(message_from_json(row.message).kind)
            org_id, bot_id, chat_id = row.org_id, row.bot_id, contact.external_id
        outcome = self.channels.channel_for(org_id, bot_id).chat_action(chat_id, action)
        log.debug("delivery.chat_action", delivery_id=delivery_id, action=action, outcome=outcome)
        again = chat_action_timer(delivery_id, now + CHAT_ACTION_REPEAT, until, after)
        return Outcome([again] if again.due_at < until else [])

    def pending(
        self, session: Session, due_before: datetime | None, after_id: int, limit: int
    ) -> list[tuple[int, Timer]]:
        """Chat actions are cosmetic: one lost with the timer store is not brought back."""
        return []


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) else None
