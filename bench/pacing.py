"""Pacing benchmark: sends through the real Telegram adapter against the fake Bot API.

Several worker threads share one Redis pacer (as Celery workers on several machines would)
and push N sends spread over many chats, a few of them to one busy chat. Prints the achieved
rate against the configured per-bot rate, and the shortest gap between two sends to the same
chat (Telegram allows about one message per second per chat). Run:

    .venv/bin/python bench/pacing.py [--quick] [--rate 30]

The last line printed is `rate_deviation_pct=<x>`.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import threading
import time
from collections import defaultdict

import redis

from reengage.adapters.channels.telegram import TelegramChannel, TelegramLimits, close_bots
from reengage.adapters.clock import SystemClock
from reengage.adapters.pacing import RedisPacer
from reengage.domain.outbound import MessageKind, OutboundMessage, SendContext, Sent
from reengage.testing.server import serve
from reengage.testing.telegram import FakeTelegram

REDIS_URL = "redis://127.0.0.1:6379/10"
TOKEN = "424242:BENCH-pacing"
WORKERS = 4
BUSY = "999999"


def plan(sends: int, busy: int) -> list[str]:
    """`busy` sends to one chat; the rest go three times round a set of chats."""
    chats = (sends - busy) // 3
    spread = [str(100_000 + i % chats) for i in range(sends - busy)]
    out: list[str] = []
    step = max(1, len(spread) // max(busy, 1))
    for i, chat in enumerate(spread):
        if busy and i % step == 0 and out.count(BUSY) < busy:
            out.append(BUSY)
        out.append(chat)
    out += [BUSY] * (busy - out.count(BUSY))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300 sends instead of 1,000")
    parser.add_argument("--rate", type=float, default=30.0, help="per-bot messages/s")
    args = parser.parse_args()
    sends = 300 if args.quick else 1000
    busy = 8 if args.quick else 20
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    for key in client.scan_iter("{pace:tg:bench}*"):
        client.delete(key)
    fake = FakeTelegram()
    limits = TelegramLimits(per_bot=args.rate, per_chat=1.0)
    with serve(fake.app) as server:
        channel = TelegramChannel(
            TOKEN,
            bot_key="bench",
            clock=SystemClock(),
            pacer=RedisPacer(client),
            api_base=server.url,
            limits=limits,
        )
        work: queue.Queue[str] = queue.Queue()
        for chat in plan(sends, busy):
            work.put(chat)
        failures: list[object] = []

        def worker() -> None:
            while True:
                try:
                    chat = work.get_nowait()
                except queue.Empty:
                    return
                outcome = channel.send(
                    chat, OutboundMessage(MessageKind.TEXT, "oi"), SendContext(SystemClock().now())
                )
                if not isinstance(outcome, Sent):
                    failures.append(outcome)

        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        close_bots()
    calls = fake.calls_to("sendMessage")
    stamps = sorted(c.at.timestamp() for c in calls)
    span = stamps[-1] - stamps[0]
    achieved = (len(stamps) - 1) / span if span > 0 else float("inf")
    per_chat: dict[str, list[float]] = defaultdict(list)
    for c in calls:
        per_chat[str(c.params["chat_id"])].append(c.at.timestamp())
    gaps = [
        b - a
        for times in per_chat.values()
        for a, b in zip(sorted(times), sorted(times)[1:], strict=False)
    ]
    window = [sum(1 for s in stamps if t <= s < t + 1.0) for t in stamps]
    busy_gaps = [
        b - a for a, b in zip(sorted(per_chat[BUSY]), sorted(per_chat[BUSY])[1:], strict=False)
    ]
    deviation = (achieved - args.rate) / args.rate * 100
    print(f"sends={len(calls)} workers={WORKERS} chats={len(per_chat)} failures={len(failures)}")
    for failure in failures[:3]:
        print(f"  failure: {failure}")
    print(f"elapsed_s={elapsed:.2f} configured_rate={args.rate:g}/s achieved_rate={achieved:.2f}/s")
    print(f"max_sends_in_any_1s_window={max(window)}")
    print(
        f"busy_chat: sends={len(per_chat[BUSY])} min_gap_s={min(busy_gaps):.3f} "
        f"median_gap_s={statistics.median(busy_gaps):.3f}"
    )
    print(f"min_gap_same_chat_s={min(gaps):.3f}  (Telegram: about 1 message/s per chat)")
    print(f"rate_deviation_pct={deviation:+.1f}")


if __name__ == "__main__":
    main()
