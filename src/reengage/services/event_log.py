"""The conversation event log: every decision reengage took, once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from reengage.adapters.db.models import Conversation, ConversationEvent
from reengage.adapters.db.sets import insert_many

# Written with Core statements on the table: an event row is written once, never loaded.
_TABLE: Any = ConversationEvent.__table__


def append_event(
    session: Session,
    conversation: Conversation,
    *,
    kind: str,
    dedup_key: str,
    now: datetime,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Append an event unless one with the same `dedup_key` exists; True when appended.

    One statement: the unique key (conversation, dedup key) decides, so two executors of
    the same timer cannot both append. It is `append_events`' statement, compiled once (the
    dialect's INSERT … ON CONFLICT has no cache key: built per call, it was compiled per call).
    """
    event = NewEvent(conversation, kind, dedup_key, now, reason, detail or {})
    return bool(append_events(session, [event]))


@dataclass(frozen=True, slots=True)
class NewEvent:
    conversation: Conversation
    kind: str
    dedup_key: str
    now: datetime
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def append_events(session: Session, events: list[NewEvent]) -> list[int]:
    """`append_event` for many, in one statement (each once per `dedup_key`); the ids of the
    conversations whose event was appended."""
    return [conversation for conversation, _ in _append(session, events)]


def appended_events(session: Session, events: list[NewEvent]) -> set[tuple[int, str]]:
    """`append_events`, telling which were appended: their (conversation id, dedup key)."""
    return set(_append(session, events))


def _append(session: Session, events: list[NewEvent]) -> list[tuple[int, str]]:
    if not events:
        return []
    if any(e.conversation.id is None for e in events):
        session.flush()  # a conversation made in this transaction gets its id
    with session.no_autoflush:  # the rows need nothing pending; pending work stays batched
        return _insert(session, events)


def _insert(session: Session, events: list[NewEvent]) -> list[tuple[int, str]]:
    appended = insert_many(
        session,
        _TABLE,
        [
            {
                "org_id": e.conversation.org_id,
                "conversation_id": e.conversation.id,
                "kind": e.kind,
                "reason": e.reason,
                "dedup_key": e.dedup_key,
                "detail": e.detail,
                "created_at": e.now,
            }
            for e in events
        ],
        conflict=["conversation_id", "dedup_key"],
        returning=[_TABLE.c.conversation_id, _TABLE.c.dedup_key],
    )
    return [(conversation, key) for conversation, key in appended.tuples()]
