"""What happened to whom: episodes and deliveries filtered for the console, a contact's
whole story (conversations, their events, episodes, deliveries) on one timeline, and the
conversations waiting for a human."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Contact, Conversation, ConversationEvent, Delivery, Episode
from reengage.services.tenancy import owned, scoped, scoped_columns

LIMIT = 200


@dataclass(frozen=True, slots=True)
class Filters:
    """A list's filters; None is any. `since` inclusive, `until` exclusive."""

    bot_id: int | None = None
    status: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Moment:
    """One line of a contact's timeline."""

    at: datetime
    kind: str  # event | episode | delivery
    what: str
    reason: str | None
    ref: int


@dataclass(frozen=True, slots=True)
class History:
    contact: Contact
    conversations: list[Conversation]
    episodes: list[Episode]
    deliveries: list[Delivery]
    timeline: list[Moment]


def _filtered(stmt: Select[Any], model: Any, reason: Any, at: Any, f: Filters) -> Select[Any]:
    for column, value in ((model.bot_id, f.bot_id), (model.status, f.status), (reason, f.reason)):
        if value is not None:
            stmt = stmt.where(column == value)
    if f.since is not None:
        stmt = stmt.where(at >= f.since)
    if f.until is not None:
        stmt = stmt.where(at < f.until)
    return stmt


def list_episodes(session: Session, org_id: int, f: Filters) -> list[tuple[Episode, str]]:
    """Episodes (newest first) with their contact's id on the channel."""
    stmt = scoped_columns(Episode, org_id, Episode, Contact.external_id).join(
        Contact, Contact.id == Episode.contact_id
    )
    stmt = _filtered(stmt, Episode, Episode.end_reason, Episode.started_at, f)
    rows = session.execute(stmt.order_by(Episode.id.desc()).limit(LIMIT)).tuples()
    return [(e, u) for e, u in rows]


def list_deliveries(session: Session, org_id: int, f: Filters) -> list[tuple[Delivery, str]]:
    """Deliveries (newest first) with their contact's id on the channel."""
    stmt = scoped_columns(Delivery, org_id, Delivery, Contact.external_id).join(
        Contact, Contact.id == Delivery.contact_id
    )
    stmt = _filtered(stmt, Delivery, Delivery.reason, Delivery.scheduled_at, f)
    rows = session.execute(stmt.order_by(Delivery.id.desc()).limit(LIMIT)).tuples()
    return [(d, u) for d, u in rows]


def contact_history(session: Session, org_id: int, contact_id: int) -> History:
    """One contact of the organization and everything reengage did with them."""
    contact = owned(session, Contact, org_id, contact_id, field="contact_id")
    mine = Conversation.contact_id == contact.id
    conversations = list(
        session.scalars(scoped(Conversation, org_id, mine).order_by(Conversation.id))
    )
    events = session.scalars(
        scoped(
            ConversationEvent,
            org_id,
            ConversationEvent.conversation_id.in_([c.id for c in conversations]),
        )
        .order_by(ConversationEvent.id.desc())
        .limit(LIMIT)
    ).all()
    episodes = list(
        session.scalars(
            scoped(Episode, org_id, Episode.contact_id == contact.id).order_by(Episode.id.desc())
        )
    )
    deliveries = list(
        session.scalars(
            scoped(Delivery, org_id, Delivery.contact_id == contact.id)
            .order_by(Delivery.id.desc())
            .limit(LIMIT)
        )
    )
    timeline = [Moment(e.created_at, "event", e.kind, e.reason, e.conversation_id) for e in events]
    for ep in episodes:
        timeline.append(Moment(ep.started_at, "episode", "episode_started", None, ep.id))
        if ep.ended_at is not None:
            what = f"episode_{ep.status}"
            timeline.append(Moment(ep.ended_at, "episode", what, ep.end_reason, ep.id))
    for d in deliveries:
        at = d.sent_at or d.finished_at or d.scheduled_at
        what = f"{d.purpose} {d.status}"
        timeline.append(Moment(at, "delivery", what, d.reason, d.id))
    timeline.sort(key=lambda m: (m.at, m.kind, m.ref), reverse=True)
    return History(contact, conversations, episodes, deliveries, timeline)


def find_contact_id(session: Session, org_id: int, bot_id: int, user_id: str) -> int | None:
    found: int | None = session.scalar(
        scoped_columns(Contact, org_id, Contact.id).where(
            Contact.bot_id == bot_id, Contact.external_id == user_id
        )
    )
    return found


def handed_off(session: Session, org_id: int) -> list[tuple[Conversation, Contact]]:
    """Conversations with a human (every queue), the longest-waiting first."""
    stmt = (
        scoped_columns(Conversation, org_id, Conversation, Contact)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.status == "handoff")
        .order_by(Conversation.last_activity_at, Conversation.id)
        .limit(LIMIT)
    )
    return [(c, k) for c, k in session.execute(stmt).tuples()]
