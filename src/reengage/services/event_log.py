"""The conversation event log: every decision reengage took, once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from reengage.adapters.db.models import Conversation, ConversationEvent
from reengage.adapters.db.session import insert_for


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
    the same timer cannot both append.
    """
    if conversation.id is None:
        session.flush()  # a conversation made in this transaction gets its id
    appended = session.scalar(
        insert_for(session, ConversationEvent)
        .values(
            org_id=conversation.org_id,
            conversation_id=conversation.id,
            kind=kind,
            reason=reason,
            dedup_key=dedup_key,
            detail=detail or {},
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["conversation_id", "dedup_key"])
        .returning(ConversationEvent.id)
    )
    return appended is not None
