"""The write-behind of hot clocks (`write_subject_clocks`), one batch mixing every case, on
SQLite and PostgreSQL: the same rows must come out of both paths."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Campaign, Contact, Conversation, Episode
from reengage.adapters.db.subjects import write_subject_clocks
from reengage.domain.activity import ConversationClock, ConversationStatus, SubjectClock
from reengage.runtime import Runtime
from tests.factories import make_bot, make_org

# Quotes, commas, braces, a backslash and non-ASCII: a user id must travel intact.
ODD_USER = 'zé "o", {x}\\y'


class Batch:
    """Clocks for subjects of one bot, written in one transaction as a flush does."""

    def __init__(self, runtime: Runtime, org_id: int, bot_id: int, t0: datetime) -> None:
        self.runtime, self.org_id, self.bot_id, self.t0 = runtime, org_id, bot_id, t0

    def clock(
        self, user: str, seq: int, minute: int, gen: int = 0, paid: datetime | None = None
    ) -> SubjectClock:
        at = self.t0 + timedelta(minutes=minute)
        clock = ConversationClock(
            activity_seq=seq, last_activity_at=at, last_message_at=at, paid_at=paid
        )
        return SubjectClock(self.org_id, self.bot_id, user, gen, clock, at + timedelta(hours=1))

    def write(self, *items: SubjectClock) -> None:
        with self.runtime.sessions.begin() as session:
            write_subject_clocks(session, items, self.runtime.clock.now())

    def conversations(self, user: str) -> list[Conversation]:
        with self.runtime.sessions() as s:
            return list(
                s.scalars(
                    select(Conversation)
                    .join(Contact, Contact.id == Conversation.contact_id)
                    .where(Contact.bot_id == self.bot_id, Contact.external_id == user)
                    .order_by(Conversation.id)
                )
            )


@pytest.fixture
def batch(db_url: str, make_runtime: Callable[..., Runtime]) -> Batch:
    runtime = make_runtime(db_url)
    org = make_org(runtime).org_id
    return Batch(runtime, org, make_bot(runtime, org), runtime.clock.now())


def test_one_batch_mixing_every_case(batch: Batch, clock: ManualClock) -> None:
    batch.write(
        batch.clock("newer", 3, 1),
        batch.clock("late", 3, 1),
        batch.clock("same", 3, 1),
        batch.clock("next-gen", 4, 1),
    )
    [same] = batch.conversations("same")
    handler_deadline = batch.t0 + timedelta(days=1)
    with batch.runtime.sessions.begin() as s:  # a handler set this silence's deadline
        s.get_one(Conversation, same.id).inactivity_due_at = handler_deadline
    clock.advance(timedelta(minutes=5))

    batch.write(
        batch.clock("newer", 5, 3),  # a newer version: replaces the clock and the deadline
        batch.clock("late", 2, 2),  # an older version: changes nothing
        batch.clock("same", 3, 4),  # the same version, clocks moved: the deadline stays
        batch.clock("next-gen", 6, 4, gen=1),  # after a close: a new conversation
        batch.clock(ODD_USER, 1, 4),  # a subject never seen
    )

    [newer] = batch.conversations("newer")
    assert (newer.activity_seq, newer.last_activity_at) == (5, batch.t0 + timedelta(minutes=3))
    assert newer.inactivity_due_at == batch.t0 + timedelta(minutes=3, hours=1)
    [late] = batch.conversations("late")
    assert (late.activity_seq, late.last_activity_at) == (3, batch.t0 + timedelta(minutes=1))
    assert late.inactivity_due_at == batch.t0 + timedelta(minutes=1, hours=1)
    [same] = batch.conversations("same")
    assert (same.activity_seq, same.last_activity_at) == (3, batch.t0 + timedelta(minutes=4))
    assert same.inactivity_due_at == handler_deadline
    old, new = batch.conversations("next-gen")
    assert (old.status, old.closed_at, old.inactivity_due_at) == ("closed", clock.now(), None)
    assert (old.generation, old.activity_seq) == (0, 4)
    assert (new.status, new.generation, new.activity_seq) == ("bot", 1, 6)
    assert new.inactivity_due_at == batch.t0 + timedelta(minutes=4, hours=1)
    [odd] = batch.conversations(ODD_USER)
    assert (odd.activity_seq, odd.generation, odd.opened_at) == (1, 0, clock.now())


def test_a_new_conversation_continues_the_contacts_version(batch: Batch) -> None:
    batch.write(batch.clock("u", 7, 1))
    batch.write(batch.clock("u", 9, 2, gen=1))  # closes the first, opens the second
    batch.write(batch.clock("u", 4, 3, gen=2))  # older than the contact's version: held off
    first, second, third = batch.conversations("u")
    assert [c.status for c in (first, second, third)] == ["closed", "closed", "bot"]
    assert (third.generation, third.activity_seq) == (2, 9)
    assert (third.last_activity_at, third.inactivity_due_at) == (None, None)
    batch.write(batch.clock("u", 10, 4, gen=2))  # then a newer clock lands as usual
    assert batch.conversations("u")[-1].activity_seq == 10


def test_payment_and_return_end_running_episodes(batch: Batch, clock: ManualClock) -> None:
    batch.write(batch.clock("payer", 3, 1), batch.clock("back", 3, 1), batch.clock("quiet", 3, 1))
    started = clock.advance(timedelta(minutes=20))
    with batch.runtime.sessions.begin() as s:
        campaign = Campaign(org_id=batch.org_id, bot_id=batch.bot_id, updated_at=started)
        s.add(campaign)
        s.flush()
        for contact in s.scalars(select(Contact).where(Contact.bot_id == batch.bot_id)):
            s.add(
                Episode(
                    org_id=batch.org_id,
                    campaign_id=campaign.id,
                    version=1,
                    bot_id=batch.bot_id,
                    contact_id=contact.id,
                    seq=3,
                    started_at=started,
                    next_due_at=started + timedelta(hours=1),
                )
            )
    paid = started + timedelta(minutes=2)
    batch.write(
        batch.clock("payer", 3, 1, paid=paid),  # paid, no message: converted
        batch.clock("back", 4, 25),  # came back: cancelled when they did
        batch.clock("quiet", 3, 1),  # nothing new: runs on
    )

    with batch.runtime.sessions() as s:
        rows = s.execute(
            select(Contact.external_id, Contact.paid_at, Episode)
            .join(Episode, Episode.contact_id == Contact.id)
            .order_by(Contact.external_id)
        ).all()
    ended = {user: (paid_at, e.status, e.end_reason, e.ended_at) for user, paid_at, e in rows}
    assert ended == {
        "back": (None, "cancelled", "user_active", batch.t0 + timedelta(minutes=25)),
        "payer": (paid, "converted", "paid", paid),
        "quiet": (None, "running", None, None),
    }


def test_every_subject_of_a_large_batch_lands(batch: Batch) -> None:
    # More subjects than one chunk of IN terms (SQLite) holds.
    batch.write(*(batch.clock(f"u{i}", 1, 1) for i in range(1_200)))
    batch.write(*(batch.clock(f"u{i}", 2 + i % 2, 2, gen=i % 3 // 2) for i in range(1_300)))
    with batch.runtime.sessions() as s:
        rows = s.execute(
            select(Conversation.status, Conversation.generation, Conversation.activity_seq)
        ).all()
    open_rows = [(g, seq) for status, g, seq in rows if status != ConversationStatus.CLOSED.value]
    assert len(open_rows) == 1_300
    assert sum(seq for _, seq in open_rows) == sum(2 + i % 2 for i in range(1_300))
    # Subjects 2, 5, 8, ... went to generation 1: their first conversation closed.
    closed = [g for status, g, _ in rows if status == ConversationStatus.CLOSED.value]
    assert closed == [0] * len([i for i in range(1_200) if i % 3 == 2])


def _episode_statements(batch: Batch, *items: SubjectClock) -> list[str]:
    """Write a flush of `items`; the statements it ran on the episode table."""
    seen: list[str] = []

    def note(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(batch.runtime.engine, "before_cursor_execute", note)
    try:
        batch.write(*items)
    finally:
        event.remove(batch.runtime.engine, "before_cursor_execute", note)
    return [s.split()[0] for s in seen if "recovery_episode" in s]


def test_returns_and_payments_after_the_last_step_are_credited_in_the_same_lookup(
    batch: Batch, clock: ManualClock
) -> None:
    users = ["back", "payer", "too-late", "no-episode"]
    batch.write(*(batch.clock(u, 3, 1) for u in users))
    sent = batch.t0 + timedelta(hours=1)  # each episode's last step went out then
    with batch.runtime.sessions.begin() as s:
        campaign = Campaign(org_id=batch.org_id, bot_id=batch.bot_id, updated_at=sent)
        s.add(campaign)
        s.flush()
        for contact in s.scalars(select(Contact).where(Contact.bot_id == batch.bot_id)):
            if contact.external_id == "no-episode":
                continue
            s.add(
                Episode(
                    org_id=batch.org_id,
                    campaign_id=campaign.id,
                    version=1,
                    bot_id=batch.bot_id,
                    contact_id=contact.id,
                    seq=3,
                    status="completed",
                    end_reason="completed",
                    next_step=2,
                    last_step=1,
                    started_at=batch.t0,
                    last_sent_at=sent,
                    ended_at=sent,
                    return_until=sent + timedelta(minutes=30),
                    convert_until=sent + timedelta(days=7),
                )
            )
    # No episode with an open window among them: the one lookup, nothing written.
    assert _episode_statements(batch, batch.clock("no-episode", 4, 70)) == ["SELECT"]

    paid = sent + timedelta(days=2)
    statements = _episode_statements(
        batch,
        batch.clock("back", 4, 80),  # 20 min after the last step: a return
        batch.clock("payer", 4, 60 * 24 * 2 + 60, paid=paid),  # paid 2 days after it
        batch.clock("too-late", 4, 120),  # 60 min after it: past the 30-minute window
    )
    assert statements == ["SELECT", "UPDATE"]  # the same lookup, one write of the credits
    with batch.runtime.sessions() as s:
        rows = s.execute(
            select(Contact.external_id, Episode.status, Episode.returned_at, Episode.converted_at)
            .join(Episode, Episode.contact_id == Contact.id)
            .order_by(Contact.external_id)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("back", "completed", batch.t0 + timedelta(minutes=80), None),
        ("payer", "completed", None, paid),
        ("too-late", "completed", None, None),
    ]
