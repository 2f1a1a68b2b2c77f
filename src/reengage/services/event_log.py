"""The conversation event log: every decision reengage took, once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from reengage.adapters.db.models import Conversation, ConversationEvent
from reengage.services.tenancy import scoped_columns


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

    Callers hold the conversation row lock, so the check and the insert cannot interleave
    with another executor of the same timer.
    """
    exists = session.scalar(
        scoped_columns(ConversationEvent, conversation.org_id, ConversationEvent.id).where(
            ConversationEvent.conversation_id == conversation.id,
            ConversationEvent.dedup_key == dedup_key,
        )
    )
    if exists is not None:
        return False
    session.add(
        ConversationEvent(
            org_id=conversation.org_id,
            conversation_id=conversation.id,
            kind=kind,
            reason=reason,
            dedup_key=dedup_key,
            detail=detail or {},
            created_at=now,
        )
    )
    return True
