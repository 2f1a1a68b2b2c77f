"""What the stores can hold: the bounds every id, number and text must respect before it is
written or compared in a query. A value past them is refused with its field named, never
left to fail in the database (a 2**63 id or a NUL byte is otherwise an error deep in a
driver, or a poisoned row that a background flush retries forever)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from reengage.domain.activity import ActivityEvent

MAX_BIGINT = 2**63 - 1  # BigInteger columns: every id
MAX_INT = 2**31 - 1  # Integer columns: counts, indices, seconds
MAX_DEPTH = 32  # nesting of a free-form JSON body (drafts, policies, flows)

# The VARCHAR columns an event's values land in (adapters/db/models.py).
EVENT_LIMITS = {"event_id": 128, "user_id": 128}
INBOUND_LIMITS = {"name": 200, "time_zone": 64, "language": 8}


def text_problem(value: str) -> str | None:
    """Why a text cannot be stored (PostgreSQL holds no NUL and only valid UTF-8), or None."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (a lone surrogate such as \\ud800 is not)"
    return None


@dataclass(frozen=True, slots=True)
class Problem:
    """Where in a value something cannot be stored (keys and indices from its root), and why."""

    path: tuple[str | int, ...]
    message: str


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and not -MAX_BIGINT - 1 <= value <= MAX_BIGINT:
        return "must be a 64-bit integer"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    return None


def json_problem(value: Any) -> Problem | None:
    """The first value of a JSON document that cannot be stored, or None. Iterative, so a
    hostile nesting depth costs a refusal, not a RecursionError."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if len(path) > MAX_DEPTH:
            return Problem(path, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            for key, child in reversed(item.items()):
                problem = text_problem(key) if isinstance(key, str) else None
                if problem:
                    return Problem((*path, key), f"key {problem}")
                stack.append(((*path, key), child))
        elif isinstance(item, list | tuple):
            stack.extend(((*path, i), child) for i, child in reversed(list(enumerate(item))))
        else:
            problem = _scalar_problem(item)
            if problem:
                return Problem(path, problem)
    return None


def event_problem(event: ActivityEvent) -> tuple[str, str] | None:
    """The field of an event its stores cannot hold, and why; None when it fits."""
    if not 1 <= event.bot_id <= MAX_BIGINT:
        return "bot_id", f"must be between 1 and {MAX_BIGINT}"
    texts: dict[str, tuple[str | None, int | None]] = {
        name: (getattr(event, name), limit) for name, limit in EVENT_LIMITS.items()
    }
    if event.inbound is not None:
        texts["text"] = (event.inbound.text, None)
        for name, limit in INBOUND_LIMITS.items():
            texts[name] = (getattr(event.inbound, name), limit)
    for name, (value, most) in texts.items():
        if value is None:
            continue
        if most is not None and len(value) > most:
            return name, f"must be at most {most} characters"
        problem = text_problem(value)
        if problem:
            return name, problem
    return None
