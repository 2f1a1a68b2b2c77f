"""Attribution, the funnel and the lift, as tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reengage.domain import recovery as rec
from reengage.domain import results as res

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


# Newcombe (1998), "Interval estimation for the difference between independent proportions",
# table II, method 10 (hybrid score): the published figures, to 4 decimals.
@pytest.mark.parametrize(
    ("s1", "n1", "s2", "n2", "low", "high"),
    [
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (0, 10, 0, 10, -0.2775, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0000),
        (10, 10, 0, 10, 0.6075, 1.0000),
    ],
)
def test_newcombe_hybrid_score_matches_the_published_table(
    s1: int, n1: int, s2: int, n2: int, low: float, high: float
) -> None:
    d, lo, hi = res.newcombe(s1, n1, s2, n2)
    assert d == pytest.approx(s1 / n1 - s2 / n2)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


@pytest.mark.parametrize(
    ("s", "n", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (0, 10, 0.0, 0.2775), (15, 148, 0.0624, 0.1605)],
)
def test_wilson_interval(s: int, n: int, low: float, high: float) -> None:
    lo, hi = res.wilson(s, n)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


@pytest.mark.parametrize(
    ("treatment", "holdout", "enough"),
    [
        ((10, 30), (2, 30), True),
        ((10, 29), (2, 30), False),  # an arm below 30 episodes
        ((10, 30), (2, 29), False),
        ((3, 100), (1, 100), False),  # 4 successes in both arms
        ((3, 100), (2, 100), True),
        ((0, 500), (0, 500), False),
    ],
)
def test_lift_needs_the_stated_minimum(
    treatment: tuple[int, int], holdout: tuple[int, int], enough: bool
) -> None:
    lift = res.lift(treatment, holdout)
    assert lift.enough_data is enough
    assert (lift.low is None) is (not enough)


def _episode(**over: object) -> res.Attribution:
    values: dict[str, object] = {
        "seq": 4,
        "status": "completed",
        "last_sent_at": T0,
        "return_until": T0 + 24 * H,
        "convert_until": T0 + 168 * H,
    }
    values.update(over)
    return res.Attribution(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("episode", "seq", "active", "paid", "credit"),
    [
        # after the last step: within the windows, credited; past them, not
        (_episode(), 5, T0 + 2 * H, None, res.Credit(T0 + 2 * H, None)),
        (_episode(), 5, T0 + 24 * H, None, res.Credit(T0 + 24 * H, None)),
        (_episode(), 5, T0 + 25 * H, None, None),
        (_episode(), 5, T0 + 30 * H, T0 + 30 * H, res.Credit(None, T0 + 30 * H)),
        (_episode(), 5, T0 + 169 * H, T0 + 169 * H, None),
        # the activity has not moved past the silence: no return
        (_episode(), 4, T0 + 2 * H, None, None),
        # before the step went out (a late webhook): not the step's
        (_episode(), 5, T0 - H, T0 - H, None),
        # credited once: the first return, the first payment
        (_episode(returned_at=T0 + H), 6, T0 + 3 * H, None, None),
        (_episode(returned_at=T0 + H), 6, T0 + 3 * H, T0 + 3 * H, res.Credit(None, T0 + 3 * H)),
        (_episode(converted_at=T0 + H), 6, T0 + 3 * H, T0 + 3 * H, res.Credit(T0 + 3 * H, None)),
        # no step received yet, or stopped: nothing
        (_episode(last_sent_at=None), 5, T0 + H, T0 + H, None),
        (_episode(status="stopped"), 5, T0 + H, T0 + H, None),
        # a running episode (just cancelled or converted) is credited the same way
        (_episode(status="cancelled"), 5, T0 + H, None, res.Credit(T0 + H, None)),
        (_episode(status="converted"), 5, T0 + H, T0 + H, res.Credit(T0 + H, T0 + H)),
    ],
)
def test_credit_goes_to_the_last_step_within_its_windows(
    episode: res.Attribution,
    seq: int,
    active: datetime,
    paid: datetime | None,
    credit: res.Credit | None,
) -> None:
    assert res.decide_credit(episode, seq, active, paid) == credit


def test_the_funnel_adds_steps_and_arms() -> None:
    episodes = [
        res.EpisodeGroup(1, False, 0, 10, 3, 1, 1, 0),
        res.EpisodeGroup(1, False, 1, 5, 2, 2, 0, 1),
        res.EpisodeGroup(1, False, None, 2, 0, 0, 0, 0),
        res.EpisodeGroup(1, True, 1, 6, 1, 0, 0, 0),
    ]
    steps = [
        res.DeliveryGroup(1, False, 0, "sent", None, "read", 9),
        res.DeliveryGroup(1, False, 0, "sent", None, "delivered", 2),
        res.DeliveryGroup(1, False, 0, "skipped", "window_closed", None, 2),
        res.DeliveryGroup(1, False, 0, "failed", "blocked", "failed", 1),
        res.DeliveryGroup(1, False, 1, "sent", None, "sent", 5),
        res.DeliveryGroup(1, True, 0, "skipped", "holdout", None, 6),
        res.DeliveryGroup(1, True, 1, "skipped", "holdout", None, 6),
    ]
    [v] = res.funnel(episodes, steps, receipts=True)
    assert (v.treatment.started, v.treatment.returned, v.treatment.converted) == (17, 5, 3)
    assert (v.treatment.opted_out, v.treatment.blocked) == (1, 1)
    assert (v.holdout.started, v.holdout.returned) == (6, 1)
    t0, h0 = v.steps[0]
    assert (t0.reached, t0.sent, t0.delivered, t0.read, t0.failed) == (14, 11, 11, 9, 1)
    assert t0.skipped == {"window_closed": 2}
    assert (t0.returned, t0.converted, t0.opted_out) == (3, 1, 1)
    assert (h0.reached, h0.sent, h0.skipped) == (6, 0, {"holdout": 6})
    t1, h1 = v.steps[1]
    assert (t1.sent, t1.delivered, t1.read, t1.returned, t1.blocked) == (5, 0, 0, 2, 1)
    assert h1.returned == 1
    [tg] = res.funnel(episodes, steps, receipts=False)
    assert (tg.steps[0][0].delivered, tg.steps[0][0].read) == (11, None)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"return_window": "30s"}, "return_window", "must be at least 0:01:00"),
        ({"conversion_window": "31d"}, "conversion_window", "must be at most 30 days"),
        ({"return_window": "soon"}, "return_window", None),
    ],
)
def test_attribution_windows_are_checked(
    data: dict[str, str], field: str, message: str | None
) -> None:
    with pytest.raises(rec.CampaignError) as err:
        rec.parse_campaign(data)
    assert err.value.field == field
    if message:
        assert err.value.message == message


def test_attribution_windows_default_to_a_day_and_a_week() -> None:
    campaign = rec.parse_campaign({})
    assert (campaign.return_window, campaign.conversion_window) == (24 * H, 168 * H)
    custom = rec.parse_campaign({"return_window": "2h", "conversion_window": "3d"})
    assert (custom.return_window, custom.conversion_window) == (2 * H, 72 * H)


@pytest.mark.parametrize(
    ("start", "end", "valid"),
    [(None, None, True), (T0, None, True), (None, T0, True), (T0, T0 + H, True), (T0, T0, False)],
)
def test_a_range_runs_forwards(start: datetime | None, end: datetime | None, valid: bool) -> None:
    assert res.valid_range(start, end) is valid
