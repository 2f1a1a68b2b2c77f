from __future__ import annotations

from datetime import timedelta

import pytest

from reengage.domain.duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("600", timedelta(minutes=10)),
        ("50ms", timedelta(milliseconds=50)),
        ("45s", timedelta(seconds=45)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 1h 30m ", timedelta(hours=1, minutes=30)),
        ("PT10M", timedelta(minutes=10)),
        ("P1DT2H", timedelta(days=1, hours=2)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "10x", "m", "1.5h", "-5m", "PT"])
def test_refuses_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "delta", [timedelta(0), timedelta(seconds=59), timedelta(days=2, minutes=5)]
)
def test_format_round_trips(delta: timedelta) -> None:
    assert parse_duration(format_duration(delta)) == delta
