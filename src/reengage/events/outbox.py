"""Record an event in the decision's transaction: the event, a delivery per subscription that
wants it, and (after the commit) the timers that send them. Nothing leaves inside a decision;
a timer lost between the commit and its publication is put back by the sweep."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import (
    Contact,
    Conversation,
    Episode,
    EventDelivery,
    EventSubscription,
    OutboundEvent,
)
from reengage.adapters.db.sets import insert_many
from reengage.adapters.outage import one_line
from reengage.domain import event as ev
from reengage.domain.activity import ConversationStatus
from reengage.domain.timer import Purpose, Timer, timer_key
from reengage.ports import TimerStore

log = structlog.get_logger(__name__)

# session.info keys: the subscriptions read in this transaction, the deliveries it made.
_SUBSCRIPTIONS = "events_out.subscriptions"
_PENDING = "events_out.pending"
_EVENTS = "events_out.events"  # decided, written right before the commit
_CHUNK = 500  # events per statement


def event_timer(delivery_id: int, due_at: datetime) -> Timer:
    """The timer that sends one event delivery."""
    return Timer(
        timer_key(Purpose.EVENT, str(delivery_id)),
        Purpose.EVENT,
        due_at,
        0,
        {"event_delivery_id": delivery_id},
    )


@dataclass(frozen=True, slots=True)
class _Recorded:
    """An event decided in a transaction, written with the others when it commits."""

    org_id: int
    type: str
    dedup_key: str
    ordering_key: str
    data: dict[str, Any]
    at: datetime
    subscriptions: list[int]


def emit(
    session: Session,
    org_id: int,
    event_type: ev.EventType,
    data: dict[str, Any],
    *,
    dedup_key: str,
    ordering_key: str,
    now: datetime,
) -> None:
    """Record an event for the organization's subscriptions that want it, once per
    `dedup_key`, in the caller's transaction: the transaction's events are written together
    right before it commits (`write_events`), their deliveries published once it has."""
    wanted = [
        sid for sid, patterns in _subscriptions(session, org_id) if ev.matches(patterns, event_type)
    ]
    if wanted:
        recorded = _Recorded(org_id, event_type.value, dedup_key, ordering_key, data, now, wanted)
        session.info.setdefault(_EVENTS, []).append(recorded)


def write_events(session: Session) -> None:
    """Write the events this transaction decided, in the order it decided them, in two
    statements per chunk (the events, once per `dedup_key`; a delivery per subscription of
    each event written), and have their timers published after the commit."""
    recorded: list[_Recorded] = session.info.pop(_EVENTS, [])
    unique = list({(r.org_id, r.dedup_key): r for r in reversed(recorded)}.values())[::-1]
    for start in range(0, len(unique), _CHUNK):
        _write_chunk(session, unique[start : start + _CHUNK])


def _write_chunk(session: Session, chunk: list[_Recorded]) -> None:
    events: Any = OutboundEvent.__table__  # Core: rows written here are not loaded as objects
    deliveries: Any = EventDelivery.__table__
    values = [
        {
            "org_id": r.org_id,
            "type": r.type,
            "dedup_key": r.dedup_key,
            "payload": r.data,
            "created_at": r.at,
        }
        for r in chunk
    ]
    with session.no_autoflush:
        # One statement of fixed text each (the rows in one document on PostgreSQL): parsed,
        # planned and compiled once, not once per transaction as a multi-row VALUES list is.
        written = insert_many(
            session,
            events,
            values,
            returning=(events.c.id, events.c.org_id, events.c.dedup_key),
        ).tuples()
        ids = {(org, key): int(i) for i, org, key in written}
        rows: list[dict[str, Any]] = [
            {
                "org_id": r.org_id,
                "event_id": ids[(r.org_id, r.dedup_key)],
                "subscription_id": sid,
                "ordering_key": r.ordering_key,
                "status": "pending",
                "attempts": 0,
                "next_at": r.at,
                "retry_from": r.at,
                "created_at": r.at,
            }
            for r in sorted(
                (r for r in chunk if (r.org_id, r.dedup_key) in ids),
                key=lambda r: ids[(r.org_id, r.dedup_key)],
            )
            for sid in r.subscriptions
        ]
        if not rows:
            return
        made = insert_many(
            session, deliveries, rows, returning=(deliveries.c.id, deliveries.c.next_at)
        ).tuples()
        publish_on_commit(session, [event_timer(int(i), at) for i, at in made])


# Every session writes the events it decided before it commits, whoever made it: `emit` cannot
# be used without this module, so no event is ever left unwritten.
sa_event.listen(Session, "before_commit", write_events)


def publish_on_commit(session: Session, timers: list[Timer]) -> None:
    """Have these event timers published once the session's transaction commits."""
    session.info.setdefault(_PENDING, []).extend(timers)


def _subscriptions(session: Session, org_id: int) -> list[tuple[int, list[str]]]:
    """The organization's enabled subscriptions, read once per transaction."""
    kept: dict[int, list[tuple[int, list[str]]]] = session.info.setdefault(_SUBSCRIPTIONS, {})
    if org_id not in kept:
        with session.no_autoflush:
            rows = session.execute(
                select(EventSubscription.id, EventSubscription.event_types).where(
                    EventSubscription.org_id == org_id, EventSubscription.enabled
                )
            ).tuples()
            kept[org_id] = [(sid, list(types)) for sid, types in rows]
    return kept[org_id]


def publish_after_commit(sessions: sessionmaker[Session], timers: TimerStore) -> None:
    """Have every session of `sessions` publish the event timers its transaction made once
    it commits (and forget them, and the subscriptions it read, when it ends)."""

    def committed(session: Session) -> None:
        made: list[Timer] = session.info.pop(_PENDING, [])
        session.info.pop(_SUBSCRIPTIONS, None)
        if made:
            try:
                timers.schedule(made)
            except Exception as exc:  # the sweep puts them back from the database
                log.warning("events.publish_failed", timers=len(made), error=one_line(exc))

    def rolled_back(session: Session) -> None:
        session.info.pop(_PENDING, None)
        session.info.pop(_SUBSCRIPTIONS, None)
        session.info.pop(_EVENTS, None)

    sa_event.listen(sessions, "after_commit", committed)
    sa_event.listen(sessions, "after_soft_rollback", lambda s, _t: rolled_back(s))


def iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at else None


def conversation_data(
    session: Session,
    conv: Conversation,
    reason: str | None,
    now: datetime,
    status: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The payload of a conversation event: the conversation where it stands now (`status`:
    the one the decision gives it, when it is applied after the commit)."""
    contact = session.get_one(Contact, conv.contact_id)
    return {
        "bot_id": conv.bot_id,
        "contact": contact_ref(contact),
        "conversation": {
            "id": conv.id,
            "status": status or conv.status,
            "flow": conv.active_flow,
            "node": conv.active_node,
            "queue": conv.handoff_queue,
        },
        "reason": reason,
        "occurred_at": iso(now),
    } | extra


def contact_ref(contact: Contact) -> dict[str, Any]:
    return {"id": contact.id, "user_id": contact.external_id}


def emit_for_conversation(
    session: Session,
    conv: Conversation,
    event_type: ev.EventType,
    *,
    reason: str | None,
    dedup_key: str,
    now: datetime,
    status: str | None = None,
    **extra: Any,
) -> None:
    """`emit` of a conversation's event, in the conversation's order."""
    if not _subscriptions(session, conv.org_id):
        return  # nobody listens: not even the payload is built
    emit(
        session,
        conv.org_id,
        event_type,
        conversation_data(session, conv, reason, now, status, **extra),
        dedup_key=f"conversation:{conv.id}:{dedup_key}",
        ordering_key=f"conversation:{conv.id}",
        now=now,
    )


def emit_agent_closed(session: Session, conversation_ids: Sequence[int], now: datetime) -> None:
    """`conversation.agent_closed` of conversations in handoff that activity closed (the
    agent's close through the API, or the integrator's `conversation.status`), in the very
    transaction that writes the close: a crash cannot keep one without the other."""
    if not conversation_ids:
        return
    conversations = session.scalars(
        select(Conversation)
        .where(Conversation.id.in_(list(conversation_ids)))
        .order_by(Conversation.id)
        .execution_options(populate_existing=True)  # closed by a statement: read afresh
    )
    for conv in conversations:
        emit_for_conversation(
            session,
            conv,
            ev.EventType.AGENT_CLOSED,
            reason="agent",
            dedup_key="agent_closed",
            now=now,
            status=ConversationStatus.CLOSED.value,
        )


def emit_for_contact(
    session: Session,
    contact: Contact,
    event_type: ev.EventType,
    *,
    reason: str | None,
    dedup_key: str,
    now: datetime,
) -> None:
    """`emit` of a contact's event, in the contact's order."""
    if not _subscriptions(session, contact.org_id):
        return
    data = {
        "bot_id": contact.bot_id,
        "contact": contact_ref(contact),
        "reason": reason,
        "occurred_at": iso(now),
    }
    emit(
        session,
        contact.org_id,
        event_type,
        data,
        dedup_key=f"contact:{contact.id}:{dedup_key}",
        ordering_key=f"contact:{contact.id}",
        now=now,
    )


def emit_for_episode(
    session: Session,
    episode: Episode,
    event_type: ev.EventType,
    *,
    dedup_key: str,
    now: datetime,
    **extra: Any,
) -> None:
    """`emit` of a recovery episode's event, in its conversation's order."""
    if not _subscriptions(session, episode.org_id):
        return
    contact = session.get_one(Contact, episode.contact_id)
    data = {
        "bot_id": episode.bot_id,
        "contact": contact_ref(contact),
        "conversation_id": episode.conversation_id,
        "episode": {
            "id": episode.id,
            "campaign_id": episode.campaign_id,
            "version": episode.version,
            "holdout": episode.holdout,
            "status": episode.status,
            "reason": episode.end_reason,
            "started_at": iso(episode.started_at),
        },
        "occurred_at": iso(now),
    } | extra
    emit(
        session,
        episode.org_id,
        event_type,
        data,
        dedup_key=f"episode:{episode.id}:{dedup_key}",
        ordering_key=f"conversation:{episode.conversation_id}",
        now=now,
    )


def emit_episodes_ended(
    session: Session, ended: Sequence[tuple[int, int, str, str | None]], now: datetime
) -> None:
    """`episode.ended` of episodes ended at once by one statement: (organization, episode,
    status, reason) each."""
    wanted = {
        i: (status, reason) for org, i, status, reason in ended if _subscriptions(session, org)
    }
    if not wanted:
        return
    episodes = session.scalars(
        select(Episode)
        .where(Episode.id.in_(list(wanted)))
        .execution_options(populate_existing=True)  # ended by a statement: read them afresh
    )
    for episode in episodes:
        status, reason = wanted[episode.id]
        emit_for_episode(
            session,
            episode,
            ev.EventType.EPISODE_ENDED,
            dedup_key="ended",
            now=now,
            status=status,
            reason=reason,
        )
