"""Events out's decisions: which subscriptions want an event, when a failed one is tried
again, when a subscription is disabled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reengage.domain import event as ev

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("patterns", "event_type", "wanted"),
    [
        (["*"], "contact.blocked", True),
        (["conversation.*"], "conversation.handed_off", True),
        (["conversation.*"], "contact.blocked", False),
        (["conversation.closed"], "conversation.closed", True),
        (["conversation.closed"], "conversation.agent_closed", False),
        (["episode.ended", "delivery.*"], "delivery.ambiguous", True),
        (["episode.ended", "delivery.*"], "episode.started", False),
    ],
)
def test_patterns_match_types_groups_and_everything(
    patterns: list[str], event_type: str, wanted: bool
) -> None:
    assert ev.matches(patterns, event_type) is wanted


@pytest.mark.parametrize(
    ("patterns", "problem"),
    [
        (["*"], None),
        (["conversation.*", "contact.opted_out"], None),
        ([], "at least one event type is needed"),
        (["conversation.handedoff"], "unknown event type 'conversation.handedoff'"),
        (["chat.*"], "unknown event type 'chat.*'"),
        (["conversation*"], "unknown event type 'conversation*'"),
        (["*"] * 51, "at most 50 event types"),
    ],
)
def test_patterns_are_checked_with_one_precise_message(
    patterns: list[str], problem: str | None
) -> None:
    assert ev.check_patterns(patterns) == problem


@pytest.mark.parametrize(
    ("attempts", "after", "retry_in"),
    [
        (1, timedelta(0), timedelta(seconds=5)),
        (2, timedelta(seconds=5), timedelta(seconds=10)),
        (5, timedelta(minutes=5), timedelta(seconds=80)),
        (20, timedelta(hours=10), timedelta(hours=1)),  # capped
        (30, timedelta(hours=23, minutes=30), timedelta(minutes=30)),  # the period's end
    ],
)
def test_failed_deliveries_back_off_exponentially(
    attempts: int, after: timedelta, retry_in: timedelta
) -> None:
    assert ev.next_retry(attempts, T0, T0 + after) == ev.RetryAt(T0 + after + retry_in)


def test_the_retry_period_is_24_hours() -> None:
    assert ev.next_retry(40, T0, T0 + timedelta(hours=24)) == ev.GiveUp()
    assert isinstance(ev.next_retry(40, T0, T0 + timedelta(hours=23, minutes=59)), ev.RetryAt)


def test_a_subscription_failing_for_24_hours_is_disabled() -> None:
    assert not ev.should_disable(None, T0)
    assert not ev.should_disable(T0, T0 + timedelta(hours=23, minutes=59))
    assert ev.should_disable(T0, T0 + timedelta(hours=24))


def test_the_envelope_carries_the_webhook_id_type_version_and_time() -> None:
    body = ev.envelope(7, ev.EventType.CLOSED, T0, {"reason": "x"})
    assert body == {
        "id": "evt_7",
        "type": "conversation.closed",
        "version": 1,
        "timestamp": "2026-01-05T12:00:00Z",
        "data": {"reason": "x"},
    }
