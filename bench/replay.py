"""What-if replay throughput, and usual-hour vs fixed-time timing, on synthetic contacts.

The replay core (`reengage.domain.replay`: the engine's `decide_start`, step schedules and end
rule on a virtual clock) runs a campaign over generated histories; generating them is not
timed. Prints `contact_days_per_s` (contacts x replayed days per second of replay) and, for
the same contacts and days, the share of step sends followed by the contact's own activity
within 1 h, with the draft's day steps at a fixed time vs at each contact's usual hour.

Generating model (seeded, one RNG per contact): zone uniform among São Paulo, New York,
Lisbon; a personal peak hour uniform in 08..21 local; on each day, a session with probability
0.5 (0.35 on weekends); a session starts at the peak hour plus a normal offset (standard
deviation 45 min) with probability 0.7, else at a uniform time between 08:00 and 23:00; it
holds 1-4 messages 1-4 minutes apart. Histories cover 28 days of warm-up (profiles learn
from them) and the replayed days. Campaign: threshold 30m, step 1 at `2h`, step 2 at
`+1d 10:00` (fixed) or `+1d usual 10:00` (usual hour), no send window, Telegram's rate
(28 messages/s).

    .venv/bin/python bench/replay.py [--quick]   # last line: contact_days_per_s=… usual_vs_fixed=…

`--quick`: 10,000 contacts x 30 days; the full run: 100,000 x 30 days.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reengage.domain import recovery as rec
from reengage.domain import replay as rp

ZONES = ["America/Sao_Paulo", "America/New_York", "Europe/Lisbon"]
WARMUP_DAYS = 28
END = datetime(2026, 11, 30, tzinfo=UTC)
CAMPAIGN = rec.parse_campaign(
    {
        "time_zone": "America/Sao_Paulo",
        "threshold": "30m",
        "steps": [
            {"schedule": "2h", "blocks": [{"text": "still there?"}]},
            {"schedule": "+1d 10:00", "blocks": [{"text": "we kept your cart"}]},
        ],
    }
)


def history(contact_id: int, days: int) -> rp.ContactHistory:
    rng = random.Random(contact_id)
    zone_name = rng.choice(ZONES)
    tz = ZoneInfo(zone_name)
    peak = rng.randint(8, 21)
    first = (END - timedelta(days=days + WARMUP_DAYS)).astimezone(tz).date()
    instants: list[datetime] = []
    for d in range(days + WARMUP_DAYS):
        day = first + timedelta(days=d)
        if rng.random() >= (0.35 if day.weekday() >= 5 else 0.5):
            continue
        if rng.random() < 0.7:
            minutes = peak * 60 + rng.gauss(0, 45)
        else:
            minutes = rng.uniform(8 * 60, 23 * 60)
        start = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(minutes=minutes)
        at = start.astimezone(UTC)
        for _ in range(rng.randint(1, 4)):
            instants.append(at)
            at += timedelta(minutes=rng.randint(1, 4))
    return rp.ContactHistory(contact_id, f"u{contact_id}", sorted(instants), zone_name)


def histories(n: int, days: int) -> Iterator[rp.ContactHistory]:
    return (history(i, days) for i in range(1, n + 1))


def timed(campaign: rec.Campaign, n: int, days: int) -> tuple[rp.ReplayResult, float, float]:
    """The replay's result, its wall-clock seconds and its CPU seconds (generation excluded)."""
    settings = rp.ReplaySettings(END - timedelta(days=days), END, rate=28.0)
    run = rp.Replay(campaign, settings)
    wall = cpu = 0.0
    for h in histories(n, days):
        t0, c0 = time.perf_counter(), time.thread_time()
        run.add(h)
        wall, cpu = wall + time.perf_counter() - t0, cpu + time.thread_time() - c0
    t0, c0 = time.perf_counter(), time.thread_time()
    result = run.result()
    return result, wall + time.perf_counter() - t0, cpu + time.thread_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, days = (10_000, 30) if args.quick else (100_000, 30)
    fixed, _, _ = timed(rp.as_fixed(CAMPAIGN), n, days)
    usual, seconds, cpu = timed(rp.as_usual(CAMPAIGN), n, days)
    per_s = usual.contact_days / seconds  # the usual-hour replay: the dearer of the two
    print(f"contacts={n} days={days} contact_days={usual.contact_days}")
    print(f"usual_replay_wall_s={seconds:.1f} usual_replay_cpu_s={cpu:.1f}")
    print(f"contact_days_per_cpu_s={usual.contact_days / cpu:.0f}")
    print(f"episodes={fixed.episodes_started} sends={fixed.sends} silences={fixed.silences}")
    for name, result in (("fixed", fixed), ("usual", usual)):
        for s in result.steps:
            print(
                f"{name}_step{s.index}: sent={s.sent} returned_before={s.returned_before} "
                f"wasted={s.wasted} active_within_1h={s.active_within_hour} "
                f"from_profile={s.from_profile} from_fallback={s.from_fallback}"
            )
    print(
        f"queue: rate={fixed.queue.rate} peak_wait_s={fixed.queue.peak_wait_seconds} "
        f"peak_hour={fixed.queue.peak_hour} peak_backlog={fixed.queue.peak_backlog} "
        f"(usual: {usual.queue.peak_wait_seconds} s)"
    )
    print(
        f"active_within_1h fixed={fixed.active_within_hour_share:.4f} "
        f"usual={usual.active_within_hour_share:.4f}"
    )
    ratio = f"{usual.active_within_hour_share:.3f}/{fixed.active_within_hour_share:.3f}"
    print(f"contact_days_per_s={per_s:.0f} usual_vs_fixed={ratio}")


if __name__ == "__main__":
    main()
