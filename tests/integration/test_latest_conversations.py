"""A silence reads and locks only its contact's newest conversation, however many closed
ones the contact has behind it."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Contact, Conversation
from reengage.runtime import Runtime
from reengage.silence.handler import latest_conversations
from tests.factories import make_bot, make_org


def _history(runtime: Runtime, clock: ManualClock, org: int, bot: int, user: str) -> list[int]:
    """A contact with two closed conversations and, newest, an open one: their ids."""
    with runtime.sessions.begin() as s:
        contact = Contact(org_id=org, bot_id=bot, external_id=user, created_at=clock.now())
        s.add(contact)
        s.flush()
        rows = [
            Conversation(
                org_id=contact.org_id,
                bot_id=bot,
                contact_id=contact.id,
                status=status,
                timeout_seq=0,
                timeout_stage=0,
                context_variables={},
                activity_seq=seq,
                generation=seq,
                opened_at=clock.now(),
                closed_at=clock.now() if status == "closed" else None,
            )
            for seq, status in enumerate(("closed", "closed", "bot"), start=1)
        ]
        s.add_all(rows)
        s.flush()
        return [row.id for row in rows]


def test_the_newest_conversation_of_each_subject(
    db_url: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    runtime = make_runtime(db_url)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org)
    ana = _history(runtime, clock, org, bot, "ana")
    bia = _history(runtime, clock, org, bot, "bia")
    with runtime.sessions.begin() as s:
        found = latest_conversations(s, [(bot, "ana"), (bot, "bia"), (bot, "nobody")])
        assert {k: conv.id for k, (conv, _) in found.items()} == {
            (bot, "ana"): ana[-1],
            (bot, "bia"): bia[-1],
        }
        assert {contact.external_id for _, contact in found.values()} == {"ana", "bia"}


def test_only_the_newest_conversation_is_locked(
    pg_db: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    runtime = make_runtime(pg_db)
    org = make_org(runtime).org_id
    bot = make_bot(runtime, org)
    *closed, newest = _history(runtime, clock, org, bot, "ana")
    url = pg_db.replace("postgresql+psycopg://", "postgresql://")
    with runtime.sessions.begin() as s, psycopg.connect(url, autocommit=True) as other:
        latest_conversations(s, [(bot, "ana")])
        for conversation_id in closed:  # free for anyone else
            other.execute(
                "SELECT id FROM conversation WHERE id = %s FOR UPDATE NOWAIT", [conversation_id]
            )
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute("SELECT id FROM conversation WHERE id = %s FOR UPDATE NOWAIT", [newest])
