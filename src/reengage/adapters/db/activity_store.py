"""Activity straight into the database (embedded mode, or PostgreSQL without Redis)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.episode_ends import Answered, end_answered_episodes
from reengage.adapters.db.hour_profiles import learn_hour_profiles
from reengage.adapters.db.inbound import insert_inbound
from reengage.adapters.db.models import ActivityRecord, Contact, Conversation
from reengage.adapters.db.session import insert_for
from reengage.adapters.db.subjects import Subject, ensure_contacts, open_conversations
from reengage.domain import inactivity
from reengage.domain.activity import (
    ActivityEvent,
    BotPolicy,
    ConversationStatus,
    EventType,
    RecordResult,
    apply_event,
)
from reengage.domain.timer import Timer
from reengage.events.outbox import emit_agent_closed
from reengage.ports import ConfigStamp, TimerStore
from reengage.services.conversation_rows import clock_of, clock_values

_CHUNK = 500
# PostgreSQL partitions the log by `occurred_at`, so its key holds the instant: a retry that
# carries another instant is found among the events this close to the batch's own.
RETRY_WINDOW = timedelta(days=7)


class SqlActivityStore:
    """Every event is committed to the database before `record` returns; timers are published
    after the commit (the sweep repairs a crash in between, from `inactivity_due_at`)."""

    def __init__(self, sessions: sessionmaker[Session], timers: TimerStore) -> None:
        self._sessions = sessions
        self._timers = timers

    def record(
        self,
        org_id: int,
        policies: Mapping[int, BotPolicy],
        events: Sequence[ActivityEvent],
        now: datetime,
        stamp: ConfigStamp | None = None,
    ) -> RecordResult:
        plan: dict[str, Timer | None] = {}  # per timer key, the last decision wins
        with self._sessions.begin() as session:
            fresh = _claim_event_ids(session, org_id, events, now)
            # In the same transaction as the activity: what the messages say, to process once.
            inbound = insert_inbound(session, org_id, fresh, now)
            pending = fresh
            while pending:
                pending = _apply(session, org_id, policies, pending, now, plan)
        self._timers.schedule([t for t in plan.values() if t is not None] + inbound)
        self._timers.cancel([key for key, t in plan.items() if t is None])
        return RecordResult(accepted=len(fresh), duplicates=len(events) - len(fresh))

    def restore(self, now: datetime, limit: int = 2000) -> bool:
        return True  # the database is the store: nothing to bring back

    def hot_seq(self, bot_id: int, user_id: str) -> int | None:
        return None  # the database is always current

    def flush(self, now: datetime, limit: int = 2000) -> int:
        return 0

    def unflushed(self) -> int:
        return 0  # written before `record` returns

    def expire_idle(self, now: datetime, limit: int = 2000) -> int:
        return 0  # nothing hot to let go

    def flush_subject(self, bot_id: int, user_id: str, now: datetime) -> None:
        return None

    def hot_seqs(self, subjects: Sequence[tuple[int, str]]) -> list[int | None]:
        return [None] * len(subjects)

    def flush_subjects(self, subjects: Sequence[tuple[int, str]], now: datetime) -> None:
        return None

    def change_status(
        self, bot_id: int, user_id: str, expected_seq: int, status: str, now: datetime
    ) -> bool:
        # The caller holds the conversation row lock, which recording activity also takes.
        return True


def _claim_event_ids(
    session: Session, org_id: int, events: Sequence[ActivityEvent], now: datetime
) -> list[ActivityEvent]:
    """Insert the idempotency records; only events seen for the first time come back."""
    first: dict[str, ActivityEvent] = {}
    for event in events:
        first.setdefault(event.event_id, event)
    unique = _not_seen(session, org_id, list(first.values()))
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
        # executemany: one cached statement, batched by the driver (no 3,500-parameter
        # statement compiled anew for each batch).
        stmt = (
            insert_for(session, ActivityRecord)
            .on_conflict_do_nothing()
            .returning(ActivityRecord.event_id)
        )
        fresh_ids.update(session.scalars(stmt, rows))
    return [e for e in unique if e.event_id in fresh_ids]


def _not_seen(session: Session, org_id: int, events: list[ActivityEvent]) -> list[ActivityEvent]:
    """The events whose id is not yet recorded at another instant (within `RETRY_WINDOW`)."""
    if not events or session.get_bind().dialect.name != "postgresql":
        return events  # SQLite's key is (org_id, event_id) alone
    instants = [e.occurred_at for e in events]
    seen = set(
        session.scalars(
            select(ActivityRecord.event_id).where(
                ActivityRecord.org_id == org_id,
                ActivityRecord.event_id.in_([e.event_id for e in events]),
                ActivityRecord.occurred_at >= min(instants) - RETRY_WINDOW,
                ActivityRecord.occurred_at <= max(instants) + RETRY_WINDOW,
            )
        )
    )
    return [e for e in events if e.event_id not in seen]


def _apply(
    session: Session,
    org_id: int,
    policies: Mapping[int, BotPolicy],
    events: list[ActivityEvent],
    now: datetime,
    plan: dict[str, Timer | None],
) -> list[ActivityEvent]:
    """Apply events to open conversations; events after a close come back for a new one."""
    by_subject: dict[Subject, list[ActivityEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: e.occurred_at):
        by_subject[(event.bot_id, event.user_id)].append(event)
    contacts = ensure_contacts(session, [(org_id, b, u) for b, u in by_subject], now)
    conversations = open_conversations(
        session, contacts, dict.fromkeys(contacts.values(), org_id), now
    )
    updates: list[dict[str, Any]] = []
    paid: dict[int, datetime] = {}
    messages: dict[int, list[datetime]] = defaultdict(list)  # for the hour profiles
    leftover: list[ActivityEvent] = []
    answered: list[Answered] = []
    agent_closed: list[int] = []
    for (bot_id, user_id), subject_events in by_subject.items():
        contact_id = contacts[(bot_id, user_id)]
        row = conversations[contact_id]
        policy = policies[bot_id]
        clock = clock_of(row)
        for i, event in enumerate(subject_events):
            if clock.status is ConversationStatus.CLOSED:
                leftover.extend(subject_events[i:])
                break
            clock = apply_event(clock, event, policy.channel)
            if event.type is EventType.USER_MESSAGE:
                messages[contact_id].append(event.occurred_at)
            if event.type is EventType.PAYMENT_CONFIRMED:
                paid[contact_id] = max(event.occurred_at, paid.get(contact_id, event.occurred_at))
        due = row.inactivity_due_at
        if clock.activity_seq != row.activity_seq:  # late messages leave the silence alone
            timer = inactivity.next_inactivity_timer(
                bot_id, user_id, clock, policy.inactivity_threshold, policy.after_close
            )
            plan[inactivity.inactivity_key(bot_id, user_id)] = timer
            due = timer and timer.due_at
        updates.append({"id": row.id, **clock_values(clock), "inactivity_due_at": due})
        if (
            row.status == ConversationStatus.HANDOFF.value
            and clock.status is ConversationStatus.CLOSED
        ):
            agent_closed.append(row.id)
        answered.append((contact_id, clock.activity_seq, clock.last_activity_at, clock.paid_at))
    session.execute(update(Conversation), updates)
    if paid:
        session.execute(update(Contact), [{"id": c, "paid_at": at} for c, at in paid.items()])
    learn_hour_profiles(session, messages)
    end_answered_episodes(session, answered)
    emit_agent_closed(session, agent_closed, now)  # in the transaction of the close
    return leftover
