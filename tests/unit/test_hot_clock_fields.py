"""A hot subject's hash fields read back into its clock: every stamp lands on its own
attribute (the clock is built positionally), shared instants included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reengage.adapters.redis.activity_store import _WRITTEN, FIELDS, _subject_clock
from reengage.domain.activity import ConversationClock, ConversationStatus

T0 = datetime(2026, 3, 2, 9, 0, 0, 123000, tzinfo=UTC)


def _ms(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


def test_each_stamp_lands_on_its_own_attribute() -> None:
    stamps = {attr: T0 + timedelta(minutes=i) for i, attr in enumerate(FIELDS)}
    stamps["last_message_at"] = stamps["last_activity_at"]  # one message moves several
    hash_fields = {"st": "closed", "seq": "7", "gen": "2", "o": "5", "th": "60000", "ac": "0"}
    hash_fields |= {FIELDS[attr]: _ms(at) for attr, at in stamps.items()}
    item = _subject_clock("9:user-1", [hash_fields.get(f) for f in _WRITTEN])
    assert item is not None
    assert item.clock == ConversationClock(ConversationStatus.CLOSED, 7, **stamps)
    assert (item.org_id, item.bot_id, item.user_id, item.generation) == (5, 9, "user-1", 2)
    assert item.due_at is None  # closed, and no wait after a close


def test_absent_stamps_stay_unset_and_the_due_time_follows_the_threshold() -> None:
    hash_fields = {"seq": "1", "th": "60000", "la": _ms(T0), "li": _ms(T0)}
    item = _subject_clock("3:u", [hash_fields.get(f) for f in _WRITTEN])
    assert item is not None
    assert item.clock == ConversationClock(
        ConversationStatus.BOT, 1, last_activity_at=T0, last_inbound_message_at=T0
    )
    assert item.due_at == T0 + timedelta(minutes=1)
    assert _subject_clock("3:u", [None] * len(_WRITTEN)) is None  # gone meanwhile
