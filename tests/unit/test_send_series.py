"""Sends day by day: the delivery rate and the lateness of what was sent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from reengage.domain.send_series import Day, daily
from reengage.services.campaign_history import DiffLine, diff


def at(day: int, hour: int, second: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, 0, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], []),
        (
            [
                ("sent", at(5, 9), at(5, 9, 2)),
                ("sent", at(5, 10), at(5, 10)),
                ("failed", at(5, 11), None),
            ],
            [Day(date(2026, 1, 5), 2, 1, 0, timedelta(0), timedelta(seconds=2))],
        ),
        (  # a pending row counts in no figure; days are the due day, in order
            [("skipped", at(6, 9), None), ("scheduled", at(5, 9), None)],
            [
                Day(date(2026, 1, 5), 0, 0, 0, None, None),
                Day(date(2026, 1, 6), 0, 0, 1, None, None),
            ],
        ),
        (  # sent before its due time (a clock skew) is not negative lateness
            [("sent", at(7, 9, 5), at(7, 9))],
            [Day(date(2026, 1, 7), 1, 0, 0, timedelta(0), timedelta(0))],
        ),
    ],
)
def test_daily(rows: list[tuple[str, datetime, datetime | None]], expected: list[Day]) -> None:
    assert daily(rows) == expected


@pytest.mark.parametrize(
    ("day", "rate"),
    [
        (Day(date(2026, 1, 5), 3, 1, 0, None, None), 0.75),
        (Day(date(2026, 1, 5), 0, 0, 2, None, None), 0.0),
        (Day(date(2026, 1, 5), 0, 0, 0, None, None), None),
    ],
)
def test_the_rate_is_sent_over_what_ended(day: Day, rate: float | None) -> None:
    assert day.rate == rate


def test_a_diff_shows_what_changed_between_two_versions() -> None:
    old = {"threshold": "10m", "steps": [{"schedule": "30m"}]}
    new = {"threshold": "10m", "steps": [{"schedule": "2h"}]}
    lines = diff(old, new)
    assert DiffLine("-", '   "schedule": "30m"') in lines
    assert DiffLine("+", '   "schedule": "2h"') in lines
    assert lines[0].sign == "@"
    assert diff(new, new) == []
    assert {line.sign for line in diff({}, new)} == {"@", "-", "+"}
