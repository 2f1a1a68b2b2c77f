"""One suite, both pacers: the in-process one and the Redis one shared by workers.

Assertions are on the reserved instants, so a loaded machine that is slow between two calls
does not change the outcome.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from reengage.adapters.pacing import InMemoryPacer, RedisPacer, take_slot
from reengage.adapters.redis.shards import SyncClient

Pacer = InMemoryPacer | RedisPacer
Limits = Sequence[tuple[str, float]]


# `cluster`: a three-master Redis Cluster (the keys of one reservation share a hash tag).
KINDS = ["memory", "redis", "cluster"]


def client_of(request: pytest.FixtureRequest, kind: str) -> SyncClient:
    return request.getfixturevalue("redis_client" if kind == "redis" else "cluster_client")  # type: ignore[no-any-return]


@pytest.fixture(params=KINDS)
def pacer(request: pytest.FixtureRequest) -> Iterator[Pacer]:
    if request.param == "memory":
        yield InMemoryPacer()
    else:
        yield RedisPacer(client_of(request, request.param))


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


def test_a_late_return_counts_the_gap_from_its_own_missed_slot(pacer: Pacer) -> None:
    """A send handed back for its slot comes back late (a busy scheduler): where nobody has
    reserved the chat after it, it may go at once, not a whole gap later."""
    chat = [("{p}:chat:1", 1.0)]
    missed = pacer.reserve(chat).at
    again = pacer.reserve(chat, late_for=missed)
    assert again.at - missed < 0.05
    assert pacer.reserve(chat).at - again.at == pytest.approx(1.0, abs=0.05)  # counted on


def test_a_late_return_waits_behind_whoever_reserved_after_it(pacer: Pacer) -> None:
    chat = [("{p}:chat:1", 1.0)]
    missed = pacer.reserve(chat).at
    other = pacer.reserve(chat).at
    again = pacer.reserve(chat, late_for=missed)
    assert again.at - other == pytest.approx(1.0, abs=0.05)


@pytest.fixture(params=KINDS)
def timed_pacer(request: pytest.FixtureRequest) -> tuple[Pacer, list[float]]:
    """A pacer on a clock the test moves: `now[0]` seconds."""
    now = [1_000.0]
    if request.param == "memory":
        return InMemoryPacer(lambda: now[0]), now
    return RedisPacer(client_of(request, request.param), lambda: now[0]), now


def test_take_slot_sends_a_late_return_instead_of_handing_it_back_again(
    timed_pacer: tuple[Pacer, list[float]],
) -> None:
    pacer, now = timed_pacer
    chat = [("{p}:chat:1", 1 / 1.05)]
    pacer.reserve(chat)  # the chat's last send
    held = take_slot(pacer, chat, defer_over=0.25)  # the next one is handed back for its slot
    assert held is not None
    now[0] = held.at + 0.1  # and comes back 100 ms late
    slept: list[float] = []
    assert take_slot(pacer, chat, held=held.at, defer_over=0.25, sleep=slept.append) is None
    assert slept == []  # it goes at once
    now[0] += 0.5
    following = take_slot(pacer, chat, defer_over=0.25)  # the chat's gap counts from it
    assert following is not None
    assert following.at == pytest.approx(held.at + 0.1 + 1.05, abs=0.001)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.timeout(10)
def test_the_next_free_slot_is_found_where_floating_point_rounds_it_down(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """1003 / 30 * 30 is 1002.99…: a taken slot 1002 must lead to slot 1003, not to 1002 for
    ever."""
    instant_ = 1002.5 / 30
    pacer: Pacer = (
        InMemoryPacer(lambda: instant_)
        if kind == "memory"
        else RedisPacer(client_of(request, kind), lambda: instant_)
    )
    first = pacer.reserve([], [("{p}:bot", 30.0)]).at
    second = pacer.reserve([], [("{p}:bot", 30.0)]).at
    assert first == pytest.approx(1002.5 / 30, abs=1e-5)  # the Redis pacer answers in µs
    assert second == pytest.approx(1003 / 30, abs=1e-5)  # the next slot, found


def test_a_reservation_across_slots_is_refused_on_a_cluster(
    cluster_client: SyncClient,
) -> None:
    """A script touches one slot: the keys of one reservation share a hash tag."""
    pacer = RedisPacer(cluster_client)
    with pytest.raises(ValueError, match="hash tag"):
        pacer.reserve([("{a}:chat:1", 1.0)], [("{b}:bot", 30.0)])
