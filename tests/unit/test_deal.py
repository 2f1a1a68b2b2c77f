"""Claimed timers dealt in batches that each hold as many bots as they can."""

from __future__ import annotations

from datetime import UTC, datetime

from reengage.domain.timer import ClaimedTimer, Timer
from reengage.timers.engine import deal

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _delivery(n: int, bot: int | None) -> ClaimedTimer:
    payload: dict[str, object] = {"delivery_id": n}
    if bot is not None:
        payload["bot_id"] = bot
    return ClaimedTimer(Timer(f"delivery:{n}", "delivery", T0, 0, payload), "t", 1)  # type: ignore[arg-type]


def test_one_bots_run_of_timers_is_spread_over_the_batches() -> None:
    # Sorted by key, 10 bots' timers come in runs of 10 (one bot's together).
    items = [_delivery(n, n // 10) for n in range(100)]
    batches = deal(items, 10)
    assert [len(b) for b in batches] == [10] * 10
    for batch in batches:  # each batch: one timer of every bot
        assert sorted(i.timer.payload["bot_id"] for i in batch) == list(range(10))
    assert sorted(i.timer.key for b in batches for i in b) == sorted(i.timer.key for i in items)


def test_a_bots_timers_keep_their_order() -> None:
    items = [_delivery(n, n % 3) for n in range(30)]
    order = [i.timer.payload["delivery_id"] for b in deal(items, 7) for i in b]
    for bot in range(3):
        mine = [n for n in order if n % 3 == bot]
        assert mine == sorted(mine)


def test_timers_without_a_bot_are_cut_in_even_slices_in_order() -> None:
    items = [_delivery(n, None) for n in range(11)]
    batches = deal(items, 5)
    assert [[i.timer.payload["delivery_id"] for i in b] for b in batches] == [
        [0, 1, 2],
        [3, 4, 5, 6],
        [7, 8, 9, 10],
    ]
    assert deal([], 5) == []
