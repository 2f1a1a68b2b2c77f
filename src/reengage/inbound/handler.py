"""What a user's message does beyond being activity, exactly once: it tells about the contact
(name, zone, language), may be an opt-out or opt-in keyword, and otherwise moves the flow.

Each message was stored (`inbound_message`) in the transaction that recorded it as activity,
or before the platform got its answer, and the subject's `inbound` timer processes the
subject's messages one at a time, in the order they were written. A message's decisions
commit with its row marked `applied`; the activity they produce (the bot spoke, the
conversation was handed off) is recorded after the commit, then the row is `done`. A crash
in between leaves `applied`: the next run records that activity again (by its event ids, so
once) and never decides twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.inbound import inbound_timer
from reengage.adapters.db.models import Bot, Contact, InboundMessage, Organization
from reengage.delivery.outbox import DeliveryRequest, delivery_timer, enqueue
from reengage.domain import contact as ct
from reengage.domain import event as ev
from reengage.domain import voice as vc
from reengage.domain.activity import ActivityEvent, ChannelKind, ConversationStatus, EventType
from reengage.domain.bot_state import halted
from reengage.domain.outbound import MessageKind, OutboundMessage
from reengage.domain.timer import Purpose, Timer
from reengage.events.outbox import emit_for_contact
from reengage.ports import ActivityStore
from reengage.services import flows
from reengage.services.flows import REPLY_VALID
from reengage.services.record_activity import Record, RecordActivity
from reengage.services.voice import voice_for
from reengage.silence.episodes import stop_for_optout
from reengage.silence.handler import latest_conversation
from reengage.silence.live_campaign import live_campaign
from reengage.timers.handler import NOTHING, Outcome

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class InboundHandler:
    """The `inbound` timer of a subject: process its oldest unprocessed message, then come
    back for the next one."""

    sessions: sessionmaker[Session]
    activity: ActivityStore
    record: Record
    language: str = "pt-BR"
    purpose: str = Purpose.INBOUND
    queue: str = "timers"

    def handle(self, timer: Timer, now: datetime) -> Outcome:
        bot_id, user_id = int(timer.payload["bot_id"] or 0), str(timer.payload["user_id"])
        self.activity.flush_subject(bot_id, user_id, now)  # its activity is in the database
        with self.sessions.begin() as session:
            row = session.scalars(
                _open(bot_id, user_id)
                .order_by(InboundMessage.occurred_at, InboundMessage.id)
                .limit(1)
                .with_for_update()
            ).first()
            if row is None:
                return NOTHING
            timers = _decide(session, row, now, self) if row.status == "pending" else []
            effects = [_event_from_json(e) for e in row.effects or ()]
            row_id, org_id = row.id, row.org_id
        done = MessageDone(self.sessions, row_id, inbound_timer(bot_id, user_id, now))
        return Outcome(timers, [RecordActivity(self.record, org_id, effects), done])

    def pending(
        self, session: Session, due_before: datetime | None, after_id: int, limit: int
    ) -> list[tuple[int, Timer]]:
        """Subjects with unprocessed messages (rebuild and sweep), by their oldest message."""
        stmt = (
            select(
                InboundMessage.id,
                InboundMessage.bot_id,
                InboundMessage.user_id,
                InboundMessage.received_at,
            )
            .where(InboundMessage.status != "done", InboundMessage.id > after_id)
            .order_by(InboundMessage.id)
            .limit(limit)
        )
        if due_before is not None:
            stmt = stmt.where(InboundMessage.received_at <= due_before)
        return [
            (i, inbound_timer(bot_id, user_id, at))
            for i, bot_id, user_id, at in session.execute(stmt)
        ]


def _open(bot_id: int, user_id: str) -> Select[tuple[InboundMessage]]:
    return select(InboundMessage).where(
        InboundMessage.bot_id == bot_id,
        InboundMessage.user_id == user_id,
        InboundMessage.status != "done",
    )


@dataclass(frozen=True, slots=True)
class MessageDone:
    """An effect: the message's activity is recorded, so it is done; the subject's timer
    comes back at once if another message waits."""

    sessions: sessionmaker[Session]
    row_id: int
    next_run: Timer

    def __call__(self) -> Sequence[Timer]:
        with self.sessions.begin() as session:
            session.execute(
                update(InboundMessage).where(InboundMessage.id == self.row_id).values(status="done")
            )
            bot_id, user_id = self.next_run.payload["bot_id"], self.next_run.payload["user_id"]
            more = session.scalar(_open(int(bot_id or 0), str(user_id)).limit(1))
        return [self.next_run] if more is not None else []


def _decide(
    session: Session, row: InboundMessage, now: datetime, deps: InboundHandler
) -> list[Timer]:
    """The message's decisions, in this transaction; its follow-up activity goes on the row."""
    bot = session.get_one(Bot, row.bot_id)
    contact = _contact(session, row, bot)
    campaign = live_campaign(session, bot.id)
    voice = voice_for(session, bot, campaign.campaign.optout_keywords if campaign else ())
    keyword = vc.decide_keyword(voice, row.text, contact.opted_out_at is not None)
    conv = latest_conversation(session, bot.id, row.user_id)
    timers: list[Timer] = []
    events: list[ActivityEvent] = []
    if keyword is not None:
        if isinstance(keyword, vc.OptOut):
            contact.opted_out_at = contact.opted_out_at or now
            stop_for_optout(session, contact, row.occurred_at, now)
        else:
            contact.opted_out_at = None
        text = vc.confirmation(voice, keyword, _language(session, contact, bot, deps))
        timers, events = _confirm(session, row, contact, conv, text, now)
        row.outcome = "opted_out" if isinstance(keyword, vc.OptOut) else "opted_in"
        log.info(f"contact.{row.outcome}", contact_id=contact.id, bot_id=bot.id)
        emit_for_contact(
            session,
            contact,
            ev.EventType.CONTACT_OPTED_OUT
            if isinstance(keyword, vc.OptOut)
            else ev.EventType.CONTACT_OPTED_IN,
            reason="keyword",
            dedup_key=f"inbound:{row.id}",
            now=now,
        )
    elif (stopped := halted(bot.disabled_at, bot.deleted_at)) is not None:
        row.outcome = stopped  # recorded, not acted on (an opt-out above still holds)
    elif conv is not None and conv.status != ConversationStatus.CLOSED.value:
        move = flows.answer_text(session, conv, row.text, now, str(row.id))
        if move is not None:
            timers, events = move.timers, move.events
        row.outcome = "flow" if move is not None and move.applied else "no_flow"
    else:
        row.outcome = "no_conversation"
    row.effects = [_event_to_json(e) for e in events]
    row.status = "applied"
    return timers


def _contact(session: Session, row: InboundMessage, bot: Bot) -> Contact:
    """The message's contact, with what the message tells about them."""
    contact = session.scalar(
        select(Contact).where(Contact.bot_id == bot.id, Contact.external_id == row.user_id)
    )
    if contact is None:  # its activity is flushed first; a new contact is the exception
        contact = Contact(
            org_id=row.org_id, bot_id=bot.id, external_id=row.user_id, created_at=row.received_at
        )
        session.add(contact)
        session.flush()
    if row.name:
        contact.name = row.name
    if row.language:
        contact.language = row.language
    if row.time_zone:
        contact.time_zone = row.time_zone
    elif contact.time_zone is None and bot.channel == ChannelKind.WHATSAPP.value:
        contact.time_zone = ct.zone_from_phone(row.user_id)
    return contact


def _language(session: Session, contact: Contact, bot: Bot, deps: InboundHandler) -> str:
    if contact.language:
        return contact.language
    if bot.language:
        return bot.language
    org = session.get(Organization, bot.org_id)
    return org.language if org is not None else deps.language


def _confirm(
    session: Session,
    row: InboundMessage,
    contact: Contact,
    conv: Any,
    text: str,
    now: datetime,
) -> tuple[list[Timer], list[ActivityEvent]]:
    """The one reply that confirms a keyword (a reply: it is sent even to who opted out)."""
    request = DeliveryRequest(
        row.org_id,
        row.bot_id,
        contact.id,
        f"voice:{row.id}",
        "voice",
        OutboundMessage(MessageKind.TEXT, text),
        conv.id if conv is not None else None,
        valid_until=now + REPLY_VALID,
    )
    timer = delivery_timer(enqueue(session, request, now), now)
    said = ActivityEvent(f"voice:{row.id}:out", EventType.BOT_MESSAGE, row.bot_id, row.user_id, now)
    return [timer], [said]


def _event_to_json(event: ActivityEvent) -> dict[str, Any]:
    return {
        "id": event.event_id,
        "type": event.type.value,
        "bot_id": event.bot_id,
        "user_id": event.user_id,
        "at": event.occurred_at.isoformat(),
        "status": event.status.value if event.status else None,
    }


def _event_from_json(data: dict[str, Any]) -> ActivityEvent:
    status = data.get("status")
    return ActivityEvent(
        str(data["id"]),
        EventType(data["type"]),
        int(data["bot_id"]),
        str(data["user_id"]),
        datetime.fromisoformat(str(data["at"])),
        ConversationStatus(status) if status else None,
    )
