from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reengage.domain.activity import ConversationClock, ConversationStatus
from reengage.domain.inactivity import (
    WRITE_BEHIND_TRIES,
    MarkInactive,
    Skip,
    decide_inactivity,
    inactivity_key,
    next_inactivity_timer,
    not_written_yet,
)
from reengage.domain.timer import Purpose

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TEN = timedelta(minutes=10)


def test_next_timer_is_last_activity_plus_threshold() -> None:
    clock = ConversationClock(activity_seq=7, last_activity_at=T0)
    timer = next_inactivity_timer(42, "u:1", clock, TEN)
    assert timer is not None
    assert timer.key == inactivity_key(42, "u:1") == "inactivity:42:u:1"
    assert (timer.purpose, timer.due_at, timer.version) == (Purpose.INACTIVITY, T0 + TEN, 7)
    assert timer.payload == {"bot_id": 42, "user_id": "u:1", "seq": 7}


@pytest.mark.parametrize(
    ("clock", "threshold"),
    [
        (ConversationClock(activity_seq=1, last_activity_at=T0), None),
        (ConversationClock(ConversationStatus.CLOSED, 1, last_activity_at=T0), TEN),
        (ConversationClock(), TEN),
    ],
    ids=["disabled", "closed", "no-activity"],
)
def test_no_timer(clock: ConversationClock, threshold: timedelta | None) -> None:
    assert next_inactivity_timer(1, "u", clock, threshold) is None


@pytest.mark.parametrize(
    ("clock", "seq", "threshold", "now", "expected"),
    [
        (
            ConversationClock(activity_seq=3, last_activity_at=T0),
            3,
            TEN,
            T0 + TEN,
            MarkInactive(T0, 3),
        ),
        (
            ConversationClock(activity_seq=4, last_activity_at=T0),
            3,
            TEN,
            T0 + TEN,
            Skip("version_mismatch"),
        ),
        (
            ConversationClock(ConversationStatus.CLOSED, 3, last_activity_at=T0),
            3,
            TEN,
            T0 + TEN,
            Skip("conversation_closed"),
        ),
        (
            ConversationClock(activity_seq=3, last_activity_at=T0),
            3,
            None,
            T0 + TEN,
            Skip("disabled"),
        ),
        (
            ConversationClock(activity_seq=3, last_activity_at=T0),
            3,
            TEN * 2,
            T0 + TEN,
            Skip("not_due"),
        ),
        (
            ConversationClock(ConversationStatus.HANDOFF, 3, last_activity_at=T0),
            3,
            TEN,
            T0 + TEN * 3,
            MarkInactive(T0, 3),
        ),
    ],
    ids=["quiet", "user-came-back", "closed", "disabled", "threshold-grew", "handoff"],
)
def test_decide_inactivity(
    clock: ConversationClock,
    seq: int,
    threshold: timedelta | None,
    now: datetime,
    expected: object,
) -> None:
    assert decide_inactivity(clock, seq, threshold, now) == expected


@pytest.mark.parametrize(
    ("hot", "written", "deferred", "wait"),
    [
        (3, None, 0, True),  # no conversation yet, Redis holds this version: being written
        (3, 2, 0, True),  # the database holds an older version
        (3, 3, 0, False),  # written: the silence runs
        (4, 2, 0, False),  # newer activity: its own timer follows
        (None, None, 0, False),  # nothing on its way (Redis lost it)
        (3, None, WRITE_BEHIND_TRIES, False),  # waited long enough
    ],
)
def test_a_silence_waits_only_for_a_write_behind_on_its_way(
    hot: int | None, written: int | None, deferred: int, wait: bool
) -> None:
    assert not_written_yet(hot, written, 3, deferred) is wait
