"""The simulator channel: the bot's messages land in a chat that a web page shows live."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import SimulatorMessage
from reengage.domain.outbound import (
    Failed,
    OutboundMessage,
    SendContext,
    SendOutcome,
    Sent,
    Skipped,
    Superseded,
    message_problems,
)

_file_ids = itertools.count(1)
_TABLE: Any = SimulatorMessage.__table__
_INSERT = insert(_TABLE).returning(_TABLE.c.id)


class SimulatorChannel:
    def __init__(self, sessions: sessionmaker[Session], org_id: int, bot_id: int) -> None:
        self._sessions = sessions
        self._org_id = org_id
        self._bot_id = bot_id

    def send(self, chat_id: str, message: OutboundMessage, context: SendContext) -> SendOutcome:
        problems = message_problems(message)
        if problems:  # the same limits as the platforms it stands for
            return Failed("invalid_message", False, detail="; ".join(problems))
        if context.on_request is not None and not context.on_request():
            return Superseded()  # as every channel: the in-flight mark first, then the message
        media = message.media
        values = {
            "org_id": self._org_id,
            "bot_id": self._bot_id,
            "chat_id": chat_id,
            "direction": "out",
            "kind": message.kind.value,
            "text": message.text or (message.template.name if message.template else None),
            "media_name": media.filename if media else None,
            "created_at": context.now,
        }
        with self._sessions.begin() as session:  # one statement, not the unit of work's flush
            row_id = session.execute(_INSERT, values).scalar_one()
        file_id = None
        if media is not None:
            file_id = media.file_id or f"sim-file-{next(_file_ids)}"
        return Sent(str(row_id), file_id)

    def delete(
        self, chat_id: str, message_id: str, sent_at: datetime, now: datetime
    ) -> SendOutcome:
        with self._sessions.begin() as session:
            row = session.scalar(
                select(SimulatorMessage).where(
                    SimulatorMessage.id == int(message_id),
                    SimulatorMessage.bot_id == self._bot_id,
                )
            )
            if row is None or row.deleted_at is not None:
                return Skipped("already_deleted")
            row.deleted_at = now
            return Sent(message_id)

    def chat_action(self, chat_id: str, action: str) -> SendOutcome:
        return Sent("")
