"""Events out while the engine sends messages: do they ever slow the messages down?

PostgreSQL + Redis (production mode), the real scheduler with in-process execution, the real
Telegram adapter against the fake Bot API on 127.0.0.1 (30 messages/s per bot, 1 per chat).
N users on B bots go quiet under a one-step recovery campaign. The same load runs twice in
one run: once with no subscription, once with one subscription that wants every event (`*`)
delivered to a local receiver that verifies every request with the `standardwebhooks`
library: each user then makes three events (`episode.started`, `episode.step_sent`,
`episode.ended`) beside their one message. The clock jumps past the threshold, then follows
real time; a run ends when the fake has every message (and the receiver every event).

Figures, side by side: messages/s, the lateness of the messages (p50/p99: when each left
after its step fell due), then events/s, how long the last event arrived after the last
message (`events_tail_s`), duplicates (a webhook-id verified twice) and requests the receiver
refused. The last line is `events_per_s=<x>`.

`--production` measures the same question in the production topology, with `bench/herd.py`'s
machinery: the fake Bot API in its own process, `reengage serve`, one `reengage scheduler` and
Celery workers (`reengage worker --concurrency 1`) laid out by `--layout` (`split`: one worker
for `timers,recovery`, one for `events`; `general`: two workers on every queue), PostgreSQL +
Redis + a Redis broker, real time, and users who wrote 3 minutes ago (every step overdue when
the scheduler starts). The receiver is the same process as above. Message lateness is when the
fake accepted each message after the scheduler started; CPU is that of the scheduler and the
workers. Its last line is `events_per_s=<x> messages_slower_by=<x>%`. Run:

    .venv/bin/python bench/events_out.py [--quick] [--redis-url redis://127.0.0.1:6379/10]
    .venv/bin/python bench/events_out.py --production [--quick] [--layout split|general]
        [--redis-url redis://127.0.0.1:6379/10] [--broker-url redis://127.0.0.1:6379/9]
        [--code REF]  # the processes run another commit's src/ (the bench is this one's)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
import redis
import standardwebhooks
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import herd
from bench.baseline import checkout
from bench.shop import bots_with_campaign, scheduler_of
from reengage.adapters.clock import ManualClock
from reengage.adapters.db.migrate import upgrade
from reengage.adapters.db.models import OutboundEvent
from reengage.config import Settings
from reengage.domain.activity import ActivityEvent, EventType
from reengage.entrypoints.logging import configure_logging
from reengage.events.sender import EVENTS_QUEUE
from reengage.runtime import Runtime
from reengage.services import event_subscriptions as subs
from reengage.testing.server import serve
from reengage.testing.telegram import FakeTelegram
from reengage.timers.executors import InlineExecutor

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "reengage_bench_events_out"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
CAMPAIGN = {
    "threshold": "10m",
    "steps": [{"schedule": "1m", "blocks": [{"kind": "text", "text": "Volte!"}]}],
}
EVENTS_PER_USER = 3
PRODUCTION_DB = "reengage_bench_events_prod"
# The Celery workers of the production topology (each `--concurrency 1`), by their queues.
LAYOUTS = {"split": ["timers,recovery", "events"], "general": ["timers,recovery,events"] * 2}


class Receiver:
    """An integrator's endpoint, in a process of its own (as it would be): verifies each
    request, counts each webhook-id once; `POST /_secret` gives it the secret, `GET /_count`
    tells what arrived."""

    def __init__(self) -> None:
        self.secret = ""
        self.seen: set[str] = set()
        self.duplicates = 0
        self.refused = 0
        self.last_at = 0.0  # wall clock
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        if request.url.path == "/_secret":
            self.secret = body.decode()
            await Response(status_code=204)(scope, receive, send)
            return
        if request.url.path == "/_count":
            with self._lock:
                count = {
                    "seen": len(self.seen),
                    "duplicates": self.duplicates,
                    "refused": self.refused,
                    "last_at": self.last_at,
                }
            await JSONResponse(count)(scope, receive, send)
            return
        headers = dict(request.headers)
        try:
            standardwebhooks.Webhook(self.secret).verify(body, headers, json_parse=False)
        except standardwebhooks.WebhookVerificationError:
            with self._lock:
                self.refused += 1
            await Response(status_code=400)(scope, receive, send)
            return
        with self._lock:
            if headers["webhook-id"] in self.seen:
                self.duplicates += 1
            self.seen.add(headers["webhook-id"])
            self.last_at = time.time()
        await Response(status_code=204)(scope, receive, send)


def _receive_forever(port: int) -> None:
    serve(Receiver(), port=port)
    while True:
        time.sleep(60)


@contextlib.contextmanager
def receiver_process() -> Iterator[str]:
    """A receiver in its own process: its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    process = multiprocessing.get_context("spawn").Process(
        target=_receive_forever, args=(port,), daemon=True
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/_count", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.join(10)


def reset(redis_url: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    redis.Redis.from_url(redis_url).flushdb()


def run(users: int, bots: int, redis_url: str, events_out: bool) -> dict[str, float]:
    reset(redis_url)
    upgrade(DB_URL)
    fake, clock = FakeTelegram(), ManualClock()
    with serve(fake.app) as platform, receiver_process() as hook_url, httpx.Client() as hook:
        settings = Settings(
            database_url=DB_URL,
            redis_url=redis_url,
            broker_url=None,
            telegram_api_base=platform.url,
        )
        runtime = Runtime.build(settings, clock=clock)
        org_id, bot_ids = bots_with_campaign(runtime, clock, bots, CAMPAIGN, 1000)
        if events_out:
            with runtime.sessions.begin() as session:
                change = subs.SubscriptionChange(f"{hook_url}/events", ["*"])
                _, secret = subs.create(session, runtime.credentials, org_id, change, clock.now())
            hook.post(f"{hook_url}/_secret", content=secret).raise_for_status()
        events = [
            ActivityEvent(
                f"e{u}", EventType.USER_MESSAGE, bot_ids[u % bots], str(100_000 + u), clock.now()
            )
            for u in range(users)
        ]
        for start in range(0, users, 500):
            runtime.record(org_id, events[start : start + 500])
        # As the scheduler process runs them in embedded mode: events on a thread of their own.
        executor = InlineExecutor(runtime, apart=(EVENTS_QUEUE,))
        scheduler = scheduler_of(runtime, clock, executor)
        scheduler.run_once()
        clock.advance(timedelta(minutes=11, seconds=1))  # past threshold + the step
        due, started, wall = clock.now(), time.monotonic(), time.time()
        expected = users * EVENTS_PER_USER if events_out else 0
        last_message = 0.0
        arrived: dict[str, float] = {"seen": 0}
        looked = 0.0
        while arrived["seen"] < expected or len(fake.calls_to("sendMessage")) < users:
            clock.set(due + timedelta(seconds=time.monotonic() - started))
            if not scheduler.run_once():
                time.sleep(0.01)
            if not last_message and len(fake.calls_to("sendMessage")) >= users:
                last_message = time.monotonic()
            if expected and time.monotonic() - looked > 0.2:
                arrived, looked = hook.get(f"{hook_url}/_count").json(), time.monotonic()
            if time.monotonic() - started > 600:
                raise RuntimeError(f"only {arrived['seen']} of {expected} events arrived")
        executor.close()
        last_event = arrived.get("last_at", 0.0) - wall + started if expected else 0.0
        total = max(last_event, last_message) - started
        late = sorted(c.at.timestamp() - wall for c in fake.calls_to("sendMessage"))
        with runtime.sessions() as session:
            recorded = int(session.scalar(select(func.count()).select_from(OutboundEvent)) or 0)
        runtime.close()
    assert recorded == expected, f"{recorded} events recorded for {expected}"
    return {
        "messages_per_s": users / (last_message - started),
        "late_p50_s": late[len(late) // 2],
        "late_p99_s": late[min(len(late) - 1, int(len(late) * 0.99))],
        "events_per_s": expected / total,
        "events_tail_s": max(0.0, last_event - last_message) if events_out else 0.0,
        "duplicates": arrived.get("duplicates", 0),
        "refused": arrived.get("refused", 0),
    }


def production(
    tree: Path,
    users: int,
    bots: int,
    layout: str,
    stores: herd.Stores,
    logs: Path,
    events_out: bool,
) -> dict[str, float]:
    """One herd through the production processes; with `events_out`, a `*` subscription to
    the receiver is made over the API before the scheduler starts."""
    expected = users * EVENTS_PER_USER if events_out else 0
    arrived: dict[str, float] = {"seen": 0}
    with receiver_process() as hook_url, httpx.Client() as hook:

        def subscribe(api: httpx.Client) -> None:
            if events_out:
                body = {"url": f"{hook_url}/events", "event_types": ["*"]}
                secret = herd._ok(api.post("/v1/event-subscriptions", json=body))["secret"]
                hook.post(f"{hook_url}/_secret", content=str(secret)).raise_for_status()

        def all_arrived() -> bool:
            arrived.update(hook.get(f"{hook_url}/_count").json())
            return arrived["seen"] >= expected

        extra = herd.Extra(subscribe, all_arrived)
        f = herd.run(tree, LAYOUTS[layout], users, bots, logs, stores, extra)
        all_arrived()
    with psycopg.connect(stores.db_url) as conn:
        row = conn.execute("SELECT count(*) FROM outbound_event").fetchone()
    recorded = int(row[0]) if row else 0
    assert recorded == expected, f"{recorded} events recorded for {expected}"
    assert f.sent == users, f"{f.sent} messages sent for {users}"
    last_event = arrived.get("last_at", 0.0) - f.started_at if expected else 0.0
    return {
        "messages_per_s": f.per_s,
        "late_p50_s": f.late_p50_s,
        "late_p99_s": f.late_p99_s,
        "cpu_ms_per_message": f.cpu_ms,
        "store_cpu_ms_per_message": f.store_cpu_ms,
        "reclaims": f.reclaims,
        **{f"cpu_ms_per_message_{name}": ms for name, ms in f.cpu_ms_by.items()},
        "events_per_s": expected / max(last_event, f.drain_s) if expected else 0.0,
        "events_tail_s": max(0.0, last_event - f.drain_s),
        "seen": arrived["seen"],
        "duplicates": arrived.get("duplicates", 0),
        "refused": arrived.get("refused", 0),
    }


def main_production(args: argparse.Namespace) -> None:
    users, bots = (500, 10) if args.quick else (3_000, 20)
    stores = herd.Stores(PRODUCTION_DB, args.redis_url, args.broker_url)
    logs = Path(tempfile.mkdtemp(prefix="reengage-events-prod-"))
    tree = checkout(args.code, logs) if args.code else herd.ROOT
    print(f"users={users} bots={bots} messages={users} events={users * EVENTS_PER_USER}")
    print(f"layout={args.layout} workers={'+'.join(LAYOUTS[args.layout])} concurrency=1 each")
    print(f"code={args.code or 'this checkout'} process logs: {logs}")
    without = production(tree, users, bots, args.layout, stores, logs / "without", False)
    with_events = production(tree, users, bots, args.layout, stores, logs / "with", True)
    print(f"{'':34}{'no events':>12}{'events out':>12}")
    for name in without:
        if name.startswith(("messages", "late", "cpu", "store", "reclaims")):
            print(f"{name:34}{without[name]:12.2f}{with_events[name]:12.2f}")
    slower = 1 - with_events["messages_per_s"] / without["messages_per_s"]
    print(f"events_tail_s={with_events['events_tail_s']:.2f}")
    print(
        f"events_seen={with_events['seen']:.0f} duplicates={with_events['duplicates']:.0f} "
        f"refused={with_events['refused']:.0f}"
    )
    print(f"events_per_s={with_events['events_per_s']:.0f} messages_slower_by={slower:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer users")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    parser.add_argument("--production", action="store_true", help="scheduler + Celery workers")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="split")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--code", help="production: another commit's src/ runs")
    args = parser.parse_args()
    configure_logging(level=logging.WARNING)
    if args.production:
        main_production(args)
        return
    users, bots = (600, 10) if args.quick else (3_000, 20)
    print(f"users={users} bots={bots} messages={users} events={users * EVENTS_PER_USER}")
    without = run(users, bots, args.redis_url, events_out=False)
    with_events = run(users, bots, args.redis_url, events_out=True)
    print(f"{'':22}{'no events':>12}{'events out':>12}")
    for name in ("messages_per_s", "late_p50_s", "late_p99_s"):
        print(f"{name:22}{without[name]:12.2f}{with_events[name]:12.2f}")
    slower = 1 - with_events["messages_per_s"] / without["messages_per_s"]
    print(f"messages_slower_by={slower:.1%}")
    print(f"events_tail_s={with_events['events_tail_s']:.2f}")
    print(f"duplicates={with_events['duplicates']:.0f} refused={with_events['refused']:.0f}")
    print(f"events_per_s={with_events['events_per_s']:.0f}")


if __name__ == "__main__":
    main()
