"""Activity straight into the database (embedded mode, or PostgreSQL without Redis), and the
writer that hot stores use to flush their clocks into it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, bindparam, case, func, select, text, tuple_, update
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.inbound import insert_inbound
from reengage.adapters.db.models import ActivityRecord, Contact, Conversation, Episode
from reengage.adapters.db.session import insert_for
from reengage.domain import inactivity
from reengage.domain import recovery as rec
from reengage.domain.activity import (
    ActivityEvent,
    BotPolicy,
    ConversationStatus,
    EventType,
    RecordResult,
    SubjectClock,
    apply_event,
)
from reengage.domain.timer import Timer
from reengage.ports import ConfigStamp, TimerStore
from reengage.services.conversation_rows import clock_of, clock_values

_CHUNK = 500
_CONVERSATION: Table = Conversation.__table__  # type: ignore[assignment]
_CONTACT: Table = Contact.__table__  # type: ignore[assignment]
_EPISODE: Table = Episode.__table__  # type: ignore[assignment]
Subject = tuple[int, str]  # (bot_id, external user id)
Answered = tuple[int, int, datetime | None, datetime | None]  # contact, seq, last activity, paid


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

    def flush_subject(self, bot_id: int, user_id: str, now: datetime) -> None:
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
        # executemany: one cached statement, batched by the driver (no 3,500-parameter
        # statement compiled anew for each batch).
        stmt = (
            insert_for(session, ActivityRecord)
            .on_conflict_do_nothing()
            .returning(ActivityRecord.event_id)
        )
        fresh_ids.update(session.scalars(stmt, rows))
    return [e for e in unique if e.event_id in fresh_ids]


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
    leftover: list[ActivityEvent] = []
    answered: list[Answered] = []
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
        answered.append((contact_id, clock.activity_seq, clock.last_activity_at, clock.paid_at))
    session.execute(update(Conversation), updates)
    if paid:
        session.execute(update(Contact), [{"id": c, "paid_at": at} for c, at in paid.items()])
    end_answered_episodes(session, answered)
    return leftover


def ensure_contacts(
    session: Session, subjects: list[tuple[int, int, str]], now: datetime
) -> dict[Subject, int]:
    """Contact ids of (org, bot, user) subjects, created when missing."""
    keys = [(b, u) for _, b, u in subjects]
    found = _select_contacts(session, keys)
    missing = [(o, b, u) for o, b, u in subjects if (b, u) not in found]
    for start in range(0, len(missing), _CHUNK):
        rows = [
            {"org_id": o, "bot_id": b, "external_id": u, "created_at": now}
            for o, b, u in missing[start : start + _CHUNK]
        ]
        session.execute(insert_for(session, Contact).on_conflict_do_nothing(), rows)
    if missing:
        found.update(_select_contacts(session, [(b, u) for _, b, u in missing]))
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


def open_conversations(
    session: Session,
    contacts: Mapping[Subject, int],
    orgs: Mapping[int, int],
    now: datetime,
    generations: Mapping[int, int] | None = None,
) -> dict[int, Row[Any]]:
    """Each contact's open conversation, locked for this transaction; opened when missing.

    A new conversation continues its contact's activity version, so a subject's timer
    versions only ever grow.
    """
    ids = list(contacts.values())
    found = _select_open(session, ids)
    missing = [(s, c) for s, c in contacts.items() if c not in found]
    seqs = _last_seqs(session, [c for _, c in missing])
    for start in range(0, len(missing), _CHUNK):
        rows = [
            {
                "org_id": orgs[c],
                "bot_id": s[0],
                "contact_id": c,
                "status": ConversationStatus.BOT.value,
                "context_variables": {},
                "activity_seq": seqs.get(c, 0),
                "generation": (generations or {}).get(c, 0),
                "opened_at": now,
            }
            for s, c in missing[start : start + _CHUNK]
        ]
        stmt = insert_for(session, Conversation).on_conflict_do_nothing(
            index_elements=[Conversation.contact_id],
            # Literal SQL: a bound parameter here breaks PostgreSQL's generic plans.
            index_where=text("status <> 'closed'"),
        )
        session.execute(stmt, rows)
    if missing:
        found.update(_select_open(session, [c for _, c in missing]))
    return found


def _last_seqs(session: Session, contact_ids: list[int]) -> dict[int, int]:
    if not contact_ids:
        return {}
    stmt = (
        select(Conversation.contact_id, func.max(Conversation.activity_seq))
        .where(Conversation.contact_id.in_(contact_ids))
        .group_by(Conversation.contact_id)
    )
    return {c: int(s) for c, s in session.execute(stmt)}


def _select_open(session: Session, contact_ids: list[int]) -> dict[int, Row[Any]]:
    found: dict[int, Row[Any]] = {}
    for start in range(0, len(contact_ids), _CHUNK):
        stmt = (
            select(_CONVERSATION)
            .where(
                Conversation.contact_id.in_(contact_ids[start : start + _CHUNK]),
                Conversation.status != ConversationStatus.CLOSED.value,
            )
            .order_by(Conversation.id)
            .with_for_update()
        )
        found.update({row.contact_id: row for row in session.execute(stmt)})
    return found


def write_subject_clocks(session: Session, items: Sequence[SubjectClock], now: datetime) -> None:
    """Write hot clocks into conversations: a newer generation closes the open conversation
    and opens the next; a clock only replaces an older one (by activity version)."""
    contacts = ensure_contacts(session, [(i.org_id, i.bot_id, i.user_id) for i in items], now)
    by_contact = {contacts[(i.bot_id, i.user_id)]: i for i in items}
    open_rows = _select_open(session, list(by_contact))
    stale = [r.id for c, r in open_rows.items() if r.generation < by_contact[c].generation]
    if stale:
        session.execute(
            update(_CONVERSATION)
            .where(Conversation.id.in_(stale))
            .values(status=ConversationStatus.CLOSED.value, closed_at=now, inactivity_due_at=None)
        )
    generations = {c: i.generation for c, i in by_contact.items()}
    orgs = {c: i.org_id for c, i in by_contact.items()}
    rows = open_conversations(session, contacts, orgs, now, generations)
    table = _CONVERSATION
    params = [
        {
            "b_id": rows[c].id,
            "b_seq": i.clock.activity_seq,
            **clock_values(i.clock),
            "inactivity_due_at": i.due_at,
        }
        for c, i in by_contact.items()
    ]
    columns = [k for k in params[0] if not k.startswith("b_")]
    values: dict[str, Any] = {name: bindparam(name) for name in columns}
    # The same version again (a late message moved some clocks, not the silence): the
    # clocks are written, the deadline a handler set for this silence stays.
    values["inactivity_due_at"] = case(
        (table.c.activity_seq < bindparam("b_seq"), bindparam("inactivity_due_at")),
        else_=table.c.inactivity_due_at,
    )
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.activity_seq <= bindparam("b_seq"))
        .values(values)
    )
    session.execute(stmt, params)
    paid = [
        {"b_id": c, "paid_at": i.clock.paid_at} for c, i in by_contact.items() if i.clock.paid_at
    ]
    if paid:
        contact = _CONTACT
        session.execute(
            update(contact)
            .where(contact.c.id == bindparam("b_id"))
            .values(paid_at=bindparam("paid_at")),
            paid,
        )
    end_answered_episodes(
        session,
        [
            (c, i.clock.activity_seq, i.clock.last_activity_at, i.clock.paid_at)
            for c, i in by_contact.items()
        ],
    )


def end_answered_episodes(session: Session, answered: Sequence[Answered]) -> None:
    """A running recovery episode ends as soon as its contact's activity moves past the
    silence it was started for — by the domain's one rule (`recovery.decide_end`):
    `converted` when they paid, otherwise `cancelled` at the time they came back (what
    "returned within 24 h" counts). The step handler applies the same rule again before
    each send, so an episode ended here never sends another step."""
    episode = _EPISODE
    latest = {c: (seq, at, paid) for c, seq, at, paid in answered if at is not None}
    if not latest:
        return
    running = session.execute(  # most contacts have no running episode: one indexed lookup
        select(episode.c.id, episode.c.contact_id, episode.c.seq, episode.c.started_at).where(
            episode.c.contact_id.in_(list(latest)), episode.c.status == "running"
        )
    ).all()
    ends = []
    for episode_id, contact_id, seq, started_at in running:
        now_seq, last_at, paid_at = latest[contact_id]
        end = rec.decide_end(seq, started_at, rec.ContactNow(now_seq, last_at, paid_at))
        if end is not None:
            ends.append(
                {"b_id": episode_id, "b_status": end.status, "b_reason": end.reason, "b_at": end.at}
            )
    if ends:
        session.execute(
            update(episode)
            .where(episode.c.id == bindparam("b_id"), episode.c.status == "running")
            .values(
                status=bindparam("b_status"),
                end_reason=bindparam("b_reason"),
                ended_at=bindparam("b_at"),
                next_due_at=None,
            ),
            ends,
        )
