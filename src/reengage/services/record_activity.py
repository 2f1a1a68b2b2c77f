"""Record activity events: move conversation clocks and their one pending timer."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Row, select, tuple_, update
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import ActivityRecord, Bot, Contact, Conversation
from reengage.adapters.db.session import insert_for
from reengage.domain import inactivity
from reengage.domain.activity import (
    ActivityEvent,
    ChannelKind,
    ConversationStatus,
    EventType,
    apply_event,
)
from reengage.domain.timer import Timer
from reengage.ports import TimerStore
from reengage.services.conversation_rows import clock_of, clock_values, inactivity_threshold
from reengage.services.errors import InvalidInput

log = structlog.get_logger(__name__)

_CHUNK = 500
Subject = tuple[int, str]  # (bot_id, external user id)


@dataclass(frozen=True, slots=True)
class RecordResult:
    accepted: int
    duplicates: int


@dataclass(slots=True)
class _Plan:
    schedule: list[Timer]
    cancel: list[str]


def record_activity(
    sessions: sessionmaker[Session],
    timers: TimerStore,
    org_id: int,
    events: Sequence[ActivityEvent],
    now: datetime,
    default_threshold: timedelta,
) -> RecordResult:
    """Apply a batch atomically: all events are recorded, or none (and nothing changes)."""
    plan = _Plan([], [])
    with sessions.begin() as session:
        bots = _load_bots(session, org_id, events)
        fresh = _claim_event_ids(session, org_id, events, now)
        pending = fresh
        while pending:
            pending = _apply(session, org_id, bots, pending, now, default_threshold, plan)
    # Publish timers only once the activity is committed; the database holds the deadline,
    # so a crash right here is repaired by the scheduler's sweep.
    timers.schedule(plan.schedule)
    timers.cancel(plan.cancel)
    log.debug("activity.recorded", org_id=org_id, accepted=len(fresh))
    return RecordResult(accepted=len(fresh), duplicates=len(events) - len(fresh))


def _load_bots(session: Session, org_id: int, events: Sequence[ActivityEvent]) -> dict[int, Bot]:
    wanted = {e.bot_id for e in events}
    bots = {
        b.id: b
        for b in session.scalars(select(Bot).where(Bot.org_id == org_id, Bot.id.in_(wanted)))
    }
    for index, event in enumerate(events):
        if event.bot_id not in bots:
            raise InvalidInput(f"unknown bot {event.bot_id}", f"events[{index}].bot_id")
    return bots


def _claim_event_ids(
    session: Session, org_id: int, events: Sequence[ActivityEvent], now: datetime
) -> list[ActivityEvent]:
    """Insert the idempotency records; only events seen for the first time come back."""
    first: dict[str, ActivityEvent] = {}
    for event in events:
        first.setdefault(event.event_id, event)
    unique = list(first.values())
    fresh_ids: set[str] = set()
    for start in range(0, len(unique), _CHUNK):
        rows = [
            {
                "org_id": org_id,
                "event_id": e.event_id,
                "type": e.type.value,
                "bot_id": e.bot_id,
                "user_id": e.user_id,
                "occurred_at": e.occurred_at,
                "received_at": now,
            }
            for e in unique[start : start + _CHUNK]
        ]
        stmt = (
            insert_for(session, ActivityRecord)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(ActivityRecord.event_id)
        )
        fresh_ids.update(session.scalars(stmt))
    return [e for e in unique if e.event_id in fresh_ids]


def _apply(
    session: Session,
    org_id: int,
    bots: dict[int, Bot],
    events: list[ActivityEvent],
    now: datetime,
    default_threshold: timedelta,
    plan: _Plan,
) -> list[ActivityEvent]:
    """Apply events to open conversations; events after a close come back for a new one."""
    by_subject: dict[Subject, list[ActivityEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.occurred_at):
        by_subject[(event.bot_id, event.user_id)].append(event)
    contacts = _ensure_contacts(session, org_id, list(by_subject), now)
    conversations = _open_conversations(session, org_id, contacts, now)
    updates: list[dict[str, Any]] = []
    paid: dict[int, datetime] = {}
    leftover: list[ActivityEvent] = []
    for subject, subject_events in by_subject.items():
        contact_id = contacts[subject]
        row = conversations[contact_id]
        bot = bots[subject[0]]
        clock = clock_of(row)
        for i, event in enumerate(subject_events):
            if clock.status is ConversationStatus.CLOSED:
                leftover.extend(subject_events[i:])
                break
            clock = apply_event(clock, event, ChannelKind(bot.channel))
            if event.type is EventType.PAYMENT_CONFIRMED:
                paid[contact_id] = max(event.occurred_at, paid.get(contact_id, event.occurred_at))
        threshold = inactivity_threshold(bot, default_threshold)
        timer = inactivity.next_inactivity_timer(row.id, clock, threshold)
        if timer is None:
            plan.cancel.append(inactivity.inactivity_key(row.id))
        else:
            plan.schedule.append(timer)
        updates.append(
            {"id": row.id, **clock_values(clock), "inactivity_due_at": timer and timer.due_at}
        )
    session.execute(update(Conversation), updates)
    if paid:
        session.execute(update(Contact), [{"id": c, "paid_at": at} for c, at in paid.items()])
    return leftover


def _ensure_contacts(
    session: Session, org_id: int, subjects: list[Subject], now: datetime
) -> dict[Subject, int]:
    found = _select_contacts(session, subjects)
    missing = [s for s in subjects if s not in found]
    for start in range(0, len(missing), _CHUNK):
        rows = [
            {"org_id": org_id, "bot_id": b, "external_id": u, "created_at": now}
            for b, u in missing[start : start + _CHUNK]
        ]
        session.execute(insert_for(session, Contact).values(rows).on_conflict_do_nothing())
    if missing:
        found.update(_select_contacts(session, missing))
    return found


def _select_contacts(session: Session, subjects: list[Subject]) -> dict[Subject, int]:
    found: dict[Subject, int] = {}
    for start in range(0, len(subjects), _CHUNK):
        chunk = subjects[start : start + _CHUNK]
        stmt = select(Contact.bot_id, Contact.external_id, Contact.id).where(
            tuple_(Contact.bot_id, Contact.external_id).in_(chunk)
        )
        found.update({(b, u): i for b, u, i in session.execute(stmt)})
    return found


def _open_conversations(
    session: Session, org_id: int, contacts: dict[Subject, int], now: datetime
) -> dict[int, Row[Any]]:
    """Each contact's open conversation, locked for this transaction; opened when missing."""
    ids = list(contacts.values())
    found = _select_open(session, ids)
    missing = [(s, c) for s, c in contacts.items() if c not in found]
    for start in range(0, len(missing), _CHUNK):
        rows = [
            {
                "org_id": org_id,
                "bot_id": s[0],
                "contact_id": c,
                "status": ConversationStatus.BOT.value,
                "context_variables": {},
                "activity_seq": 0,
                "opened_at": now,
            }
            for s, c in missing[start : start + _CHUNK]
        ]
        stmt = (
            insert_for(session, Conversation)
            .values(rows)
            .on_conflict_do_nothing(
                index_elements=[Conversation.contact_id],
                index_where=Conversation.status != "closed",
            )
        )
        session.execute(stmt)
    if missing:
        found.update(_select_open(session, [c for _, c in missing]))
    return found


def _select_open(session: Session, contact_ids: list[int]) -> dict[int, Row[Any]]:
    found: dict[int, Row[Any]] = {}
    for start in range(0, len(contact_ids), _CHUNK):
        stmt = (
            select(Conversation.__table__)
            .where(
                Conversation.contact_id.in_(contact_ids[start : start + _CHUNK]),
                Conversation.status != ConversationStatus.CLOSED.value,
            )
            .order_by(Conversation.id)
            .with_for_update()
        )
        found.update({row.contact_id: row for row in session.execute(stmt)})
    return found
