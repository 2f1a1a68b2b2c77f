"""One suite, both pacers: the in-process one and the Redis one shared by workers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from reengage.adapters.pacing import InMemoryPacer, RedisPacer

Pacer = InMemoryPacer | RedisPacer


@pytest.fixture(params=["memory", "redis"])
def pacer(request: pytest.FixtureRequest) -> Iterator[Pacer]:
    if request.param == "memory":
        yield InMemoryPacer()
    else:
        client: redis.Redis = request.getfixturevalue("redis_client")
        yield RedisPacer(client)


def test_a_gap_key_spaces_reservations(pacer: Pacer) -> None:
    waits = [pacer.reserve([("{p}:chat:1", 1.0)]) for _ in range(3)]
    assert waits[0] == pytest.approx(0, abs=0.05)
    assert waits[1] == pytest.approx(1, abs=0.05)
    assert waits[2] == pytest.approx(2, abs=0.05)


def test_a_rate_key_allows_one_send_per_slot(pacer: Pacer) -> None:
    waits = sorted(pacer.reserve([], [("{p}:bot", 10.0)]) for _ in range(20))
    assert waits[-1] == pytest.approx(2.0, abs=0.15)
    slots = {round(w * 10) for w in waits}
    assert len(slots) == 20  # never two in one slot


def test_a_slow_chat_does_not_hold_back_the_others(pacer: Pacer) -> None:
    bot = ("{p}:bot", 30.0)
    pacer.reserve([("{p}:chat:busy", 1.0)], [bot])
    busy_again = pacer.reserve([("{p}:chat:busy", 1.0)], [bot])
    others = [pacer.reserve([(f"{{p}}:chat:{i}", 1.0)], [bot]) for i in range(10)]
    assert busy_again == pytest.approx(1.0, abs=0.05)
    assert max(others) < 0.5  # they took the free slots before the busy chat's next turn
