"""Steady load, then everyone falls silent: whether timers keep their time, side by side with a
baseline commit of the code.

The production processes on an empty database and Redis: the fake Bot API in its own process
(Telegram's flood control enforced in real time), the API (`reengage serve`), one scheduler and
one Celery worker with `--concurrency 2` (prefork). Five Telegram bots, each with a recovery
campaign (threshold 2 minutes, steps 1 and then 2 minutes apart) and a timeout policy for
conversations where the bot spoke last (a reminder at 3 minutes, closed at 5). 20,000 users;
`POST /v1/events` carries 200 events/s (a user's message and the bot's answer, for 100 users a
second picked at random) for the load phase, then nothing: every user falls silent and their
reminders, closes and campaign steps come due as a wave.

Printed per minute: events/s sent, timers executed, messages the platform accepted, timer
lateness p50/p99 (the worker's `reengage_timer_lateness_seconds`, scraped each minute; p99 is
interpolated within its histogram bucket), and the largest backlog seen (timers due and not yet
done, sampled every second from Redis: unclaimed, or claimed and not acknowledged). The
baseline runs the same processes on another commit's `src/` (`PYTHONPATH`), its worker started
by the same launcher (`bench/soak_kit/worker.py`). The last lines are
`before_p99_lateness_s=… before_backlog_max=…` and `p99_lateness_s=… backlog_max=…` (the worst
minute of this code). Run from the repository root:

    .venv/bin/python bench/soak.py [--quick] [--baseline REF]

`--quick`: 5 minutes of load and 3 of silence per code (16 minutes in all); the full run is 25
and 10.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import redis
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.baseline import checkout  # noqa: E402
from bench.chaos_kit.services import free_port, wait_for  # noqa: E402
from bench.herd import Processes, _log_has, _ok, set_up_database, tree_env  # noqa: E402

BASELINE = "3389840"  # before claims were bounded and sends went side by side
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "reengage_bench_soak"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/5"
BROKER_URL = "redis://127.0.0.1:6379/6"
BOTS, USERS, USERS_PER_S = 5, 20_000, 100  # two events per user touched
TOKEN_BASE, USER_BASE = 93_000, 700_000
LEASE_S = 30
CAMPAIGN = {
    "threshold": "2m",
    "steps": [
        {"schedule": "1m", "blocks": [{"kind": "text", "text": "Ainda por aí? 🛒"}]},
        {"schedule": "2m", "blocks": [{"kind": "text", "text": "Seu carrinho te espera"}]},
    ],
}
TIMEOUT = {
    "enabled": True,
    "timeout": "5m",
    "action": "close",
    "final_text": "Encerramos por aqui. Até logo!",
    "applies_to": ["bot_wait"],
    "reminders": [{"after": "3m", "text": "Ainda está aí?"}],
}
ZSET, DATA = "{reengage:timers}:due", "{reengage:timers}:data"


@dataclass
class Minute:
    phase: str
    events: int = 0
    backlog_max: int = 0
    queue_max: int = 0
    fired: float = 0.0
    sent: int = 0
    p50: float = 0.0
    p99: float = 0.0


@dataclass
class Watch:
    """What the sampler saw in the current minute."""

    backlog_max: int = 0
    queue_max: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> tuple[int, int]:
        with self.lock:
            seen = self.backlog_max, self.queue_max
            self.backlog_max = self.queue_max = 0
            return seen


def reset() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    for url in (REDIS_URL, BROKER_URL):
        redis.Redis.from_url(url).flushdb()


def backlog(r: redis.Redis, now_ms: int) -> int:
    """Timers due and not done: unclaimed (or their lease ran out), or claimed and not
    acknowledged (scored at the end of their lease, their due time in the value)."""
    waiting = int(r.zcount(ZSET, "-inf", now_ms))
    leased = r.zrangebyscore(ZSET, f"({now_ms}", now_ms + (LEASE_S + 2) * 1000)
    if not leased:
        return waiting
    values = r.hmget(DATA, leased)
    claimed = 0
    for value in values:
        if value is None:
            continue
        _, _, attempts, due_ms, _ = value.split(b"|", 4)
        if int(attempts) > 0 and int(due_ms) <= now_ms:
            claimed += 1
    return waiting + claimed


def sample(watch: Watch, stop: threading.Event) -> None:
    r = redis.Redis.from_url(REDIS_URL)
    broker = redis.Redis.from_url(BROKER_URL)
    while not stop.wait(1.0):
        seen = backlog(r, int(time.time() * 1000))
        queued = int(broker.llen("timers")) + int(broker.llen("recovery"))
        with watch.lock:
            watch.backlog_max = max(watch.backlog_max, seen)
            watch.queue_max = max(watch.queue_max, queued)


def lateness(url: str) -> tuple[float, list[tuple[float, float]]]:
    """The worker's lateness histogram: count and cumulative (bound, count) buckets."""
    text = httpx.get(url, timeout=10).text
    buckets: list[tuple[float, float]] = []
    count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "reengage_timer_lateness_seconds":
            continue
        for s in family.samples:
            if s.name.endswith("_bucket"):
                buckets.append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                count = s.value
    return count, sorted(buckets)


def quantile(
    q: float, before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> float:
    """The q-quantile of what a histogram gained between two scrapes (linear in a bucket)."""
    gained = [(le, a - dict(before).get(le, 0.0)) for le, a in after]
    total = gained[-1][1] if gained else 0.0
    if total <= 0:
        return 0.0
    want, low, below = q * total, 0.0, 0.0
    for le, cumulative in gained:
        if cumulative >= want:
            if le == float("inf"):
                return low
            share = (want - below) / (cumulative - below) if cumulative > below else 1.0
            return low + (le - low) * share
        low, below = le, cumulative
    return low


def set_up(api: httpx.Client, api_key: str) -> list[int]:
    api.headers["Authorization"] = f"Bearer {api_key}"
    bots = []
    for i in range(1, BOTS + 1):
        body = {
            "name": f"soak-{i}",
            "channel": "telegram",
            "credentials": {"token": f"{TOKEN_BASE + i}:SOAK"},
        }
        bot = int(str(_ok(api.post("/v1/bots", json=body))["id"]))
        _ok(api.put(f"/v1/bots/{bot}/policy", json=TIMEOUT))
        _ok(api.put(f"/v1/bots/{bot}/campaign", json=CAMPAIGN))
        _ok(api.post(f"/v1/bots/{bot}/campaign/publish"))
        _ok(api.put(f"/v1/bots/{bot}/campaign/enabled", json={"enabled": True}))
        bots.append(bot)
    return bots


def load(api: httpx.Client, bots: list[int], until: float, counter: list[int]) -> None:
    """USERS_PER_S users a second, each a message and the bot's answer, in batches of 10
    users every 100 ms."""
    rng = random.Random(7)
    tick = 0
    next_at = time.monotonic()
    while time.monotonic() < until:
        now = datetime.now(UTC)
        events = []
        for u in rng.sample(range(USERS), USERS_PER_S // 10):
            bot, user = bots[u % BOTS], str(USER_BASE + u)
            said = now - timedelta(milliseconds=500)
            for kind, at in (("message.user", said), ("message.bot", now)):  # the bot answers
                events.append(
                    {
                        "id": f"soak-{tick}-{u}-{kind}",
                        "type": kind,
                        "bot_id": bot,
                        "user_id": user,
                        "occurred_at": at.isoformat(),
                    }
                )
        _ok(api.post("/v1/events", json={"events": events}))
        counter[0] += len(events)
        tick += 1
        next_at += 0.1
        time.sleep(max(0.0, next_at - time.monotonic()))


def run(tree: Path, label: str, load_s: int, quiet_s: int, logs: Path) -> list[Minute]:
    reset()
    logs.mkdir(parents=True)
    env = tree_env(tree, DB_URL, REDIS_URL, BROKER_URL)
    api_key = set_up_database(env, DB_URL)
    procs = Processes(logs)
    platform_port, api_port, metrics_port = free_port(), free_port(), free_port()
    platform_url, api_url = f"http://127.0.0.1:{platform_port}", f"http://127.0.0.1:{api_port}"
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    env["REENGAGE_TELEGRAM_API_BASE"] = platform_url
    head_env = {**env, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    cli = ["-m", "reengage.entrypoints.cli"]
    minutes: list[Minute] = []
    stop = threading.Event()
    try:
        procs.start(
            "platform", ["-m", "bench.chaos_kit.platform", "--port", str(platform_port)], head_env
        )
        procs.start("api", [*cli, "serve", "--port", str(api_port)], env)
        worker_argv = ["-m", "bench.soak_kit.worker", "--port", str(metrics_port)]
        worker_log = procs.start("worker", worker_argv, env)
        with (
            httpx.Client(base_url=api_url, timeout=60) as api,
            httpx.Client(base_url=platform_url, timeout=10) as platform,
        ):
            wait_for(lambda: platform.get("/_control/count").status_code == 200, "platform", 60)
            wait_for(lambda: api.get("/healthz").status_code < 500, "api", 60)
            wait_for(lambda: _log_has(worker_log, " ready."), "worker", 90)
            bots = set_up(api, api_key)
            log = procs.start("scheduler", [*cli, "scheduler"], env)
            wait_for(lambda: _log_has(log, "scheduler.started"), "scheduler", 90)
            watch = Watch()
            threading.Thread(target=sample, args=(watch, stop), daemon=True).start()
            began = time.monotonic()
            counter = [0]
            loader = threading.Thread(
                target=load, args=(api, bots, began + load_s, counter), daemon=True
            )
            loader.start()
            count, buckets = lateness(metrics_url)
            sent = int(platform.get("/_control/count").json()["sent"])
            events = 0
            for m in range(1, (load_s + quiet_s) // 60 + 1):
                time.sleep(max(0.0, began + 60 * m - time.monotonic()))
                now_count, now_buckets = lateness(metrics_url)
                now_sent = int(platform.get("/_control/count").json()["sent"])
                seen_backlog, seen_queue = watch.take()
                minute = Minute(
                    "load" if m * 60 <= load_s else "quiet",
                    counter[0] - events,
                    seen_backlog,
                    seen_queue,
                    now_count - count,
                    now_sent - sent,
                    quantile(0.50, buckets, now_buckets),
                    quantile(0.99, buckets, now_buckets),
                )
                minutes.append(minute)
                print(
                    f"  {label:8} min {m:>2} {minute.phase:5} events/s {minute.events / 60:>5.0f}"
                    f"  timers {minute.fired:>6.0f}  sent/s {minute.sent / 60:>5.1f}"
                    f"  lateness p50 {minute.p50:>6.2f} s p99 {minute.p99:>6.2f} s"
                    f"  backlog max {minute.backlog_max:>6}  queued max {minute.queue_max:>5}",
                    flush=True,
                )
                count, buckets, sent, events = now_count, now_buckets, now_sent, counter[0]
            loader.join()
    finally:
        stop.set()
        procs.stop()
    return minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 min of load and 3 of silence")
    parser.add_argument("--baseline", default=BASELINE, help="the commit to compare with")
    args = parser.parse_args()
    load_s, quiet_s = (300, 180) if args.quick else (1500, 600)
    work = Path(tempfile.mkdtemp(prefix="reengage-soak-"))
    trees = {"before": checkout(args.baseline, work), "now": ROOT}
    print(
        f"{USERS:,} users on {BOTS} bots, {2 * USERS_PER_S} events/s for {load_s // 60} min, "
        f"then {quiet_s // 60} min of silence; baseline {args.baseline}; logs {work}"
    )
    worst: dict[str, tuple[float, int]] = {}
    for label, tree in trees.items():
        minutes = run(tree, label, load_s, quiet_s, work / label)
        worst[label] = (max(m.p99 for m in minutes), max(m.backlog_max for m in minutes))
    before, now = worst["before"], worst["now"]
    print(f"before_p99_lateness_s={before[0]:.2f} before_backlog_max={before[1]}")
    print(f"p99_lateness_s={now[0]:.2f} backlog_max={now[1]}")


if __name__ == "__main__":
    main()
