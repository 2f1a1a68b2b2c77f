"""One suite, both pacers: the in-process one and the Redis one shared by workers.

Assertions are on the reserved instants (call time + wait), so a loaded machine that is slow
between two calls does not change the outcome.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence

import pytest
import redis

from reengage.adapters.pacing import InMemoryPacer, RedisPacer

Pacer = InMemoryPacer | RedisPacer
Limits = Sequence[tuple[str, float]]


@pytest.fixture(params=["memory", "redis"])
def pacer(request: pytest.FixtureRequest) -> Iterator[Pacer]:
    if request.param == "memory":
        yield InMemoryPacer()
    else:
        client: redis.Redis = request.getfixturevalue("redis_client")
        yield RedisPacer(client)


def instant(pacer: Pacer, gaps: Limits, rates: Limits = ()) -> float:
    before = time.monotonic()
    return before + pacer.reserve(gaps, rates)


def test_a_gap_key_spaces_reservations(pacer: Pacer) -> None:
    times = [instant(pacer, [("{p}:chat:1", 1.0)]) for _ in range(3)]
    assert times[1] - times[0] == pytest.approx(1, abs=0.05)
    assert times[2] - times[1] == pytest.approx(1, abs=0.05)


def test_a_rate_key_allows_one_send_per_slot(pacer: Pacer) -> None:
    times = sorted(instant(pacer, [], [("{p}:bot", 10.0)]) for _ in range(20))
    assert times[-1] - times[0] == pytest.approx(1.9, abs=0.15)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.05  # never two in one 100 ms slot


def test_a_slow_chat_does_not_hold_back_the_others(pacer: Pacer) -> None:
    bot = ("{p}:bot", 30.0)
    first = instant(pacer, [("{p}:chat:busy", 1.0)], [bot])
    busy_again = instant(pacer, [("{p}:chat:busy", 1.0)], [bot])
    others = [instant(pacer, [(f"{{p}}:chat:{i}", 1.0)], [bot]) for i in range(10)]
    assert busy_again - first == pytest.approx(1.0, abs=0.05)
    assert max(others) < busy_again  # they took the free slots before the busy chat's turn
