"""Contacts: what operators set on them, and those that blocked the bot (stop everything)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.orm import Session

from reengage import metrics
from reengage.adapters.db.models import Contact, Conversation, Episode
from reengage.domain.event import EventType
from reengage.domain.inactivity import inactivity_key
from reengage.domain.timer import Purpose, timer_key
from reengage.events.outbox import emit_episodes_ended, emit_for_contact
from reengage.i18n import N_
from reengage.services.errors import NotFound
from reengage.services.tenancy import get_bot, scoped, scoped_update

log = structlog.get_logger(__name__)


def mark_blocked(session: Session, contact: Contact, now: datetime) -> list[str]:
    """Mark the contact unreachable, clear its deadlines and end its running recovery
    episodes at once (`stopped/blocked`); return the timer keys to cancel."""
    if contact.blocked_at is None:
        emit_for_contact(
            session,
            contact,
            EventType.CONTACT_BLOCKED,
            reason="blocked",
            dedup_key=f"blocked:{now.isoformat()}",
            now=now,
        )
    contact.blocked_at = contact.blocked_at or now
    conversations = session.scalars(
        scoped(
            Conversation,
            contact.org_id,
            Conversation.contact_id == contact.id,
            Conversation.status != "closed",
        ).with_for_update()
    ).all()
    for conv in conversations:
        conv.inactivity_due_at = None
    keys = [inactivity_key(contact.bot_id, contact.external_id)]
    keys += stop_episodes(session, contact, "blocked", now)
    stop_completed(session, contact, "blocked", now)
    log.info("contact.blocked", contact_id=contact.id, bot_id=contact.bot_id)
    return keys


def stop_episodes(session: Session, contact: Contact, reason: str, now: datetime) -> list[str]:
    """End the contact's running recovery episodes as `stopped` for `reason`; return the keys
    of their step timers (to cancel: nothing more is due)."""
    ended = session.scalars(
        scoped_update(
            Episode, contact.org_id, Episode.contact_id == contact.id, Episode.status == "running"
        )
        .values(status="stopped", end_reason=reason, ended_at=now, next_due_at=None)
        .returning(Episode.id)
    ).all()
    for episode_id in ended:
        log.info("recovery.episode.stopped", episode_id=episode_id, reason=reason)
    emit_episodes_ended(session, [(contact.org_id, i, "stopped", reason) for i in ended], now)
    metrics.episodes_ended("stopped", reason, len(ended))
    return [timer_key(Purpose.RECOVERY_STEP, str(i)) for i in ended]


def mark_unblocked(contact: Contact) -> None:
    contact.blocked_at = None
    log.info("contact.unblocked", contact_id=contact.id, bot_id=contact.bot_id)


@dataclass(frozen=True, slots=True)
class ContactChange:
    """What an operator sets on a contact; None leaves a field as it is."""

    name: str | None = None
    time_zone: str | None = None
    language: str | None = None
    opted_out: bool | None = None


def find_contact(session: Session, org_id: int, bot_id: int, user_id: str) -> Contact:
    get_bot(session, org_id, bot_id)
    contact = session.scalar(
        scoped(Contact, org_id, Contact.bot_id == bot_id, Contact.external_id == user_id)
    )
    if contact is None:
        raise NotFound(N_("contact {user_id!r} not found"), "user_id", user_id=user_id)
    return contact


def change_contact(
    session: Session, org_id: int, bot_id: int, user_id: str, change: ContactChange, now: datetime
) -> Contact:
    """Set a contact's name, zone, language or opt-out (created if reengage has not seen them
    yet: a zone can be known before the first message)."""
    get_bot(session, org_id, bot_id)
    contact = session.scalar(
        scoped(Contact, org_id, Contact.bot_id == bot_id, Contact.external_id == user_id)
    )
    if contact is None:
        contact = Contact(org_id=org_id, bot_id=bot_id, external_id=user_id, created_at=now)
        session.add(contact)
        session.flush()
    if change.name is not None:
        contact.name = change.name
    if change.time_zone is not None:
        contact.time_zone = change.time_zone
    if change.language is not None:
        contact.language = change.language
    if change.opted_out is True and contact.opted_out_at is None:
        contact.opted_out_at = now
        stop_episodes(session, contact, "opted_out", now)
        _told(session, contact, EventType.CONTACT_OPTED_OUT, now)
    elif change.opted_out is False and contact.opted_out_at is not None:
        contact.opted_out_at = None
        _told(session, contact, EventType.CONTACT_OPTED_IN, now)
    return contact


def _told(session: Session, contact: Contact, event_type: EventType, now: datetime) -> None:
    emit_for_contact(
        session,
        contact,
        event_type,
        reason="operator",
        dedup_key=f"{event_type.value}:{now.isoformat()}",
        now=now,
    )


def stop_completed(session: Session, contact: Contact, reason: str, at: datetime) -> None:
    """An opt-out or a block within the return window of an episode's last step is that
    step's: the completed episode counts as `stopped` for `reason` (its end stays when the
    last step went out), and the return credited to this very act is dropped."""
    session.execute(
        scoped_update(
            Episode,
            contact.org_id,
            Episode.contact_id == contact.id,
            Episode.status == "completed",
            Episode.last_sent_at <= at,
            Episode.return_until >= at,
            Episode.returned_at.is_(None) | (Episode.returned_at >= at),
        ).values(status="stopped", end_reason=reason, returned_at=None)
    )
