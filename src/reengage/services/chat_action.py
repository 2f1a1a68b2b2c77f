"""The "typing…" a user sees while a block waits out its delay.

A block with a delay gets a `chat_action` timer at the start of its wait. Each firing shows
the action once (Telegram keeps it up to 5 seconds) and re-arms itself until the message is
due, so no worker thread is held for the length of the delay. The action is cosmetic: it is
never persisted, never retried, and lost timers are not rebuilt.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import Contact, Delivery
from reengage.domain.outbound import CHAT_ACTION_REPEAT, chat_action_for, message_from_json
from reengage.domain.timer import Purpose, Timer, timer_key
from reengage.ports import ActivityStore, ChannelProvider
from reengage.services.delivery_outcome import current_seq

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


def handle_chat_action(
    session: Session,
    timer: Timer,
    now: datetime,
    *,
    sessions: sessionmaker[Session],
    channels: ChannelProvider,
    activity: ActivityStore,
) -> list[Timer]:
    delivery_id = int(timer.payload["delivery_id"] or 0)
    until = datetime.fromisoformat(str(timer.payload["until"]))
    after = timer.payload.get("after")
    if now >= until:
        return []
    again = chat_action_timer(delivery_id, now + CHAT_ACTION_REPEAT, until, _int(after))
    with sessions() as reading:
        row = reading.get(Delivery, delivery_id)
        if row is None or row.status != "scheduled":
            return []
        contact = reading.get_one(Contact, row.contact_id)
        if contact.blocked_at is not None:
            return []
        if row.guard_seq is not None and current_seq(reading, contact, activity) != row.guard_seq:
            return []
        previous = reading.get(Delivery, after) if after is not None else None
        if previous is not None and previous.status in ("scheduled", "sending"):
            # The block before is still going out: its message would clear the action.
            return [
                chat_action_timer(delivery_id, now + (CHAT_ACTION_REPEAT / 4), until, _int(after))
            ]
        action = chat_action_for(message_from_json(row.message).kind)
        target = (row.org_id, row.bot_id, contact.external_id)
    org_id, bot_id, chat_id = target
    outcome = channels.channel_for(org_id, bot_id).chat_action(chat_id, action)
    log.debug("delivery.chat_action", delivery_id=delivery_id, action=action, outcome=outcome)
    return [again] if again.due_at < until else []


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) else None
