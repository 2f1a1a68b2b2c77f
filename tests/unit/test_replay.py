"""What-if replay over a scripted history: every count worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from reengage.domain import recovery as rec
from reengage.domain import schedule as sch
from reengage.domain.replay import ContactHistory, ReplaySettings, as_fixed, as_usual, replay


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


CAMPAIGN = rec.parse_campaign(
    {
        "time_zone": "UTC",
        "threshold": "10m",
        "steps": [
            {"schedule": "30m", "blocks": [{"text": "still there?"}]},
            {"schedule": "tomorrow 09:00", "blocks": [{"text": "hi"}, {"text": "offer"}]},
        ],
    }
)
SETTINGS = ReplaySettings(
    start=at(2, 0),
    end=at(9, 0),
    rate=1.0,
    timeout_stages=(timedelta(hours=1),),
    collision_gap=timedelta(minutes=30),
)
HISTORY = [
    # A: one silence; step 1 at 10:40 is 20 min from the 11:00 timeout stage.
    ContactHistory(1, "a", [at(2, 10)]),
    # B: 10:00 -> 10:05 is no silence; after 10:05 step 1 (10:45) goes, B is back at 10:50
    # on their own (wasted, active within the hour; step 2 not sent); after 10:50 both go.
    ContactHistory(2, "b", [at(2, 10), at(2, 10, 5), at(2, 10, 50)]),
    # C: back at 10:20 before step 1 (10:40); after 10:20 both steps go.
    ContactHistory(3, "c", [at(2, 10), at(2, 10, 20)]),
    # D: paid before: no episode.
    ContactHistory(4, "d", [at(2, 10)], paid_at=at(1, 12)),
    # E: the threshold passes after the replayed days.
    ContactHistory(5, "e", [at(8, 23, 55)]),
    # F: back 23h50 after step 1 (wasted within the 24 h return window), before step 2.
    ContactHistory(6, "f", [at(4, 8), at(5, 8, 30)]),
]


def test_replay_counts_a_scripted_history_exactly() -> None:
    result = replay(CAMPAIGN, HISTORY, SETTINGS)
    assert (result.contacts, result.contact_days) == (6, 42)
    assert (result.silences, result.episodes_started, result.holdout) == (8, 7, 0)
    assert result.not_started == {"paid": 1}
    first, second = result.steps
    assert (first.sent, first.messages, first.returned_before) == (6, 6, 1)
    assert (first.wasted, first.active_within_hour, first.collisions) == (2, 1, 5)
    assert (second.sent, second.messages, second.returned_before) == (4, 8, 2)
    assert (second.wasted, second.active_within_hour, second.collisions) == (0, 0, 0)
    assert (first.from_profile, first.from_fallback) == (0, 0)
    expected = [0] * 24
    expected[8], expected[9], expected[10], expected[11] = 1, 1 + 6 + 2, 2, 2
    assert result.sends_by_hour == expected
    # The 09:00 herd of 3 March: 6 messages at once, 1 per second: the last waits 5 s.
    assert result.queue.peak_wait_seconds == 5.0
    assert (result.queue.peak_hour, result.queue.peak_backlog) == (9, 5)
    assert result.active_within_hour_share == pytest.approx(1 / 10)


def test_a_faster_platform_rate_drains_the_herd_sooner() -> None:
    fast = replay(CAMPAIGN, HISTORY, ReplaySettings(at(2, 0), at(9, 0), rate=30.0))
    assert fast.queue.peak_wait_seconds == pytest.approx(5 / 30, abs=1e-3)
    assert fast.queue.peak_backlog == 5


def test_holdout_episodes_send_nothing() -> None:
    held = replace_campaign(holdout_percent=100)
    result = replay(held, HISTORY, SETTINGS)
    assert (result.episodes_started, result.holdout, result.sends) == (7, 7, 0)


def test_cooldown_and_replay_window_follow_the_engine_rules() -> None:
    cooled = replace_campaign(reentry_cooldown=timedelta(days=1))
    result = replay(cooled, HISTORY, SETTINGS)
    # B's and C's second silences fall within a day of their first episode; F's second
    # episode starts 24 h 30 min after its first (Mar 4 08:10, Mar 5 08:40): allowed.
    assert result.episodes_started == 5
    assert result.not_started == {"cooldown": 2, "paid": 1}


def replace_campaign(**changes: object) -> rec.Campaign:
    from dataclasses import replace

    return replace(CAMPAIGN, **changes)  # type: ignore[arg-type]


def evening_history(contact_id: int, first: date, days: int) -> ContactHistory:
    """Active every day at 19:20 UTC, then quiet after the last message."""
    instants = [
        datetime.combine(first + timedelta(days=d), datetime.min.time(), UTC)
        + timedelta(hours=19, minutes=20)
        for d in range(days)
    ]
    return ContactHistory(contact_id, f"u{contact_id}", instants)


def test_usual_hour_steps_use_the_profile_learned_before_each_episode() -> None:
    usual = rec.parse_campaign(
        {
            "time_zone": "UTC",
            "threshold": "2h",
            "steps": [{"schedule": "+1d usual 09:00", "blocks": [{"text": "hi"}]}],
        }
    )
    settings = ReplaySettings(at(1, 0), at(31, 0))
    history = [evening_history(1, date(2026, 3, 1), 20)]
    result = replay(usual, history, settings)
    step = result.steps[0]
    # Each silence starts at 21:20; the next day's step goes before the 19:20 return. The
    # profile is trusted from its sixth observation (5.65 decayed): silences 1-5 fall back to
    # 09:00, 6-20 go at 19:00 and 14 of them are followed by activity within the hour (the
    # last day has no return).
    assert (step.sent, step.returned_before) == (20, 0)
    assert (step.from_profile, step.from_fallback) == (15, 5)
    assert (result.sends_by_hour[9], result.sends_by_hour[19]) == (5, 15)
    assert result.active_within_hour_share == pytest.approx(14 / 20)
    fixed = replay(as_fixed(usual), history, settings)
    assert (fixed.steps[0].sent, fixed.sends_by_hour[9]) == (20, 20)
    assert fixed.active_within_hour_share == 0.0


def test_fixed_and_usual_variants_swap_the_day_forms() -> None:
    fixed = rec.parse_campaign(
        {"steps": [{"schedule": "+2d 18:30", "blocks": [{"text": "a"}]}], "time_zone": "UTC"}
    )
    usual = as_usual(fixed)
    assert usual.steps[0].schedule == sch.DaysUsual(2, sch.parse_time("18:30"))
    assert as_fixed(usual).steps[0].schedule == fixed.steps[0].schedule
