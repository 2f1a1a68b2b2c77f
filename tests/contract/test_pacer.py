"""One suite, both pacers: the in-process one and the Redis one shared by workers.

Assertions are on the reserved instants, so a loaded machine that is slow between two calls
does not change the outcome.
"""

from __future__ import annotations

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
    slot = pacer.reserve(gaps, rates)
    assert slot.wait == pytest.approx(slot.at - pacer.now(), abs=0.05)
    return slot.at


def test_a_gap_key_spaces_reservations(pacer: Pacer) -> None:
    times = [instant(pacer, [("{p}:chat:1", 1.0)]) for _ in range(3)]
    assert times[1] - times[0] == pytest.approx(1, abs=0.05)
    assert times[2] - times[1] == pytest.approx(1, abs=0.05)


def test_a_rate_key_allows_one_send_per_slot(pacer: Pacer) -> None:
    times = sorted(instant(pacer, [], [("{p}:bot", 10.0)]) for _ in range(20))
    # One per 100 ms slot: 20 reservations span 18 to 19 slots, and no 1-second window holds
    # more than 10 slots' worth (+1 for a window that straddles two slot edges).
    assert 1.75 <= times[-1] - times[0] <= 1.95
    assert max(sum(1 for t in times if s <= t < s + 1.0) for s in times) <= 11


def test_a_slow_chat_does_not_hold_back_the_others(pacer: Pacer) -> None:
    bot = ("{p}:bot", 30.0)
    first = instant(pacer, [("{p}:chat:busy", 1.0)], [bot])
    busy_again = instant(pacer, [("{p}:chat:busy", 1.0)], [bot])
    others = [instant(pacer, [(f"{{p}}:chat:{i}", 1.0)], [bot]) for i in range(10)]
    assert busy_again - first == pytest.approx(1.0, abs=0.05)
    assert max(others) < busy_again  # they took the free slots before the busy chat's turn


def test_a_hold_keeps_every_worker_off_a_chat(pacer: Pacer) -> None:
    """After a platform's retry_after, the chat's next slot is no earlier than the hold."""
    until = pacer.now() + 5
    pacer.hold(["{p}:chat:held"], until)
    assert instant(pacer, [("{p}:chat:held", 1.0)]) >= until
    assert instant(pacer, [("{p}:chat:other", 1.0)]) < until
