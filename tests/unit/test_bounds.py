from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from reengage.domain.activity import ActivityEvent, EventType, Inbound
from reengage.domain.bounds import MAX_DEPTH, Problem, event_problem, json_problem, text_problem

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "refused"),
    [("oi", False), ("", False), ("ação 💥", False), ("a\x00b", True), ("\ud800", True)],
)
def test_text(value: str, refused: bool) -> None:
    assert (text_problem(value) is not None) is refused


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"a": [1, "x", None, True, 1.5]}, None),
        ({"steps": [{"text": "a\x00"}]}, ("steps", 0, "text")),
        ({"k\ud800": 1}, ("k\ud800",)),
        ({"n": 2**63}, ("n",)),
        ({"n": -(2**63)}, None),
        ({"n": float("nan")}, ("n",)),
        ({"n": float("inf")}, ("n",)),
        ({"d": deep(MAX_DEPTH - 1)}, None),
        ({"d": deep(100_000)}, ("d", *[0] * MAX_DEPTH)),
    ],
)
def test_json(document: Any, expected: tuple[Any, ...] | None) -> None:
    problem = json_problem(document)
    assert (problem.path if isinstance(problem, Problem) else None) == expected


def event(**changes: Any) -> ActivityEvent:
    values: dict[str, Any] = {
        "event_id": "e-1",
        "type": EventType.USER_MESSAGE,
        "bot_id": 1,
        "user_id": "42",
        "occurred_at": AT,
        **changes,
    }
    return ActivityEvent(**values)


@pytest.mark.parametrize(
    ("candidate", "field"),
    [
        (event(), None),
        (event(bot_id=2**63), "bot_id"),
        (event(bot_id=0), "bot_id"),
        (event(user_id="x" * 129), "user_id"),
        (event(user_id="a\x00"), "user_id"),
        (event(event_id="\ud800"), "event_id"),
        (event(inbound=Inbound("oi\x00")), "text"),
        (event(inbound=Inbound("oi", "n" * 201)), "name"),
        (event(inbound=Inbound(None, None, "z" * 65)), "time_zone"),
        (event(inbound=Inbound("x" * 100_000)), None),
    ],
)
def test_event(candidate: ActivityEvent, field: str | None) -> None:
    problem = event_problem(candidate)
    assert (problem[0] if problem else None) == field
