"""The HTTP ingest path at the platforms' pace: single events, batches and inbound webhooks
through `reengage serve` as production runs it, against a baseline commit.

Per code (the baseline's `src/` and `migrations/` by `git archive`, run with `PYTHONPATH`;
then this checkout's), on a fresh database (`reengage_bench_http`) and Redis (two dbs of
`--redis-url`): `reengage serve` with a broker set (the process serves the API only) and one
`reengage scheduler` (the write-behind flush), each a process of its own. An aiohttp client
then measures, each part after a warm-up that makes its users known subjects:

- single events: `POST /v1/events` with one event, concurrency 50 -> events/s;
- latency: one event per request sent at a fixed 1,000 requests/s -> p50 / p99 ms;
- batches: `POST /v1/events` with 1,000 events, concurrency 4 -> events/s;
- webhooks: Telegram updates (a user's text, `X-Telegram-Bot-Api-Secret-Token`) and
  WhatsApp notifications (a message, then its status updates, `X-Hub-Signature-256`),
  concurrency 50 -> updates/s.

The last line is `single_events_per_s=<ours> batch_events_per_s=<ours>`. Run from the
repository root:

    .venv/bin/python bench/http_ingest.py [--quick] [--baseline REF] [--redis-url URL]
        [--api-workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.chaos_kit.services import BENCH_SECRET_KEY, free_port, wait_for  # noqa: E402
from bench.herd import SET_UP_DATABASE, Processes, checkout  # noqa: E402

BASELINE = "3389840"  # before keys and bots were cached and the hot path left the thread pool
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "reengage_bench_http"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
TG_SECRET = "bench-telegram-secret"
WA_SECRET = "bench-app-secret"
USERS = 2_000  # known subjects the single events and webhooks cycle over (quick: 1,000)


@dataclass
class Run:
    requests: int = 0
    units: int = 0  # events or updates
    errors: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def per_s(self) -> float:
        return self.units / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str]
    units: int


def reset(redis_url: str) -> tuple[str, str]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    base = redis_url.rstrip("/").rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    urls = (f"{base.rstrip('/')}/5", f"{base.rstrip('/')}/6")
    for url in urls:
        redis.Redis.from_url(url).flushdb()
    return urls


def wa_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(WA_SECRET.encode(), body, hashlib.sha256).hexdigest()


class Workload:
    """Request bodies, each event and update id used once per run."""

    def __init__(self, api_key: str, bots: tuple[int, int, int], users: int) -> None:
        event_bot, tg_bot, wa_bot = bots
        self.users = users
        self.auth = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.event_bot, self.tg_bot, self.wa_bot = event_bot, tg_bot, wa_bot
        self.ids = itertools.count(1)

    def event(self, user: int) -> dict[str, Any]:
        n = next(self.ids)
        kind = "message.user" if n % 2 else "message.bot"
        return {"id": f"h{n}", "type": kind, "bot_id": self.event_bot, "user_id": f"u{user}"}

    def singles(self) -> Iterator[Request]:
        for user in itertools.cycle(range(self.users)):
            yield Request("/v1/events", json.dumps(self.event(user)).encode(), self.auth, 1)

    def batches(self, size: int) -> Iterator[Request]:
        users = itertools.cycle(range(self.users * 5))
        while True:
            body = {"events": [self.event(next(users)) for _ in range(size)]}
            yield Request("/v1/events", json.dumps(body).encode(), self.auth, size)

    def webhooks(self) -> Iterator[Request]:
        """Telegram updates and WhatsApp notifications in turn (a message, then a status)."""
        tg_headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
        for user in itertools.cycle(range(self.users)):
            n = next(self.ids)
            update = {
                "update_id": n,
                "message": {
                    "message_id": n,
                    "date": int(time.time()),
                    "chat": {"id": 10_000 + user, "type": "private"},
                    "from": {"id": 10_000 + user, "is_bot": False, "first_name": "Ana"},
                    "text": "quero saber o preço",
                },
            }
            yield Request(f"/webhooks/telegram/{self.tg_bot}", json.dumps(update).encode(),
                          {**tg_headers, "Content-Type": "application/json"}, 1)  # fmt: skip
            value: dict[str, Any] = {"messaging_product": "whatsapp", "metadata": {}}
            if n % 4 == 1:
                value["statuses"] = [
                    {"id": f"wamid.out{n}", "status": "delivered",
                     "timestamp": str(int(time.time())), "recipient_id": f"5511{user:08d}"}
                ]  # fmt: skip
            else:
                value["contacts"] = [{"wa_id": f"5511{user:08d}", "profile": {"name": "Bia"}}]
                value["messages"] = [
                    {"from": f"5511{user:08d}", "id": f"wamid.in{n}", "type": "text",
                     "timestamp": str(int(time.time())), "text": {"body": "oi"}}
                ]  # fmt: skip
            payload = {
                "object": "whatsapp_business_account",
                "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
            }
            body = json.dumps(payload).encode()
            headers = {
                "X-Hub-Signature-256": wa_signature(body),
                "Content-Type": "application/json",
            }
            yield Request(f"/webhooks/whatsapp/{self.wa_bot}", body, headers, 1)


async def post(session: aiohttp.ClientSession, base: str, req: Request, run: Run) -> None:
    """One request; its events counted when answered 200 (0 stands for a failed connection)."""
    status = 0
    try:
        async with session.post(base + req.path, data=req.body, headers=req.headers) as r:
            await r.read()
            status = r.status
    except aiohttp.ClientError:
        pass
    if status == 200:
        run.units += req.units
    else:
        run.errors[status] = run.errors.get(status, 0) + 1
    run.requests += 1


async def closed_loop(
    session: aiohttp.ClientSession, base: str, requests: Iterator[Request], concurrency: int,
    count: int,
) -> Run:  # fmt: skip
    """`count` requests, `concurrency` in flight at any time."""
    run = Run()
    todo = itertools.islice(requests, count)

    async def worker() -> None:
        for req in todo:
            started = time.perf_counter()
            await post(session, base, req, run)
            run.latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - began
    return run


async def open_loop(
    session: aiohttp.ClientSession, base: str, requests: Iterator[Request], rate: float,
    seconds: float,
) -> Run:  # fmt: skip
    """Requests sent at a fixed rate, whatever the answers; latency from each one's due time."""
    run = Run()
    tasks = []
    began = time.perf_counter()

    async def one(req: Request, due: float) -> None:
        await post(session, base, req, run)
        run.latencies.append(time.perf_counter() - due)

    for i in range(int(rate * seconds)):
        due = began + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        tasks.append(asyncio.ensure_future(one(next(requests), due)))
    await asyncio.gather(*tasks)
    run.seconds = time.perf_counter() - began
    return run


def set_up(api_url: str, api_key: str) -> tuple[int, int, int]:
    with httpx.Client(base_url=api_url, timeout=60) as api:
        api.headers["Authorization"] = f"Bearer {api_key}"

        def bot(channel: str, credentials: dict[str, str]) -> int:
            r = api.post("/v1/bots", json={"name": channel, "channel": channel,
                                           "credentials": credentials})  # fmt: skip
            r.raise_for_status()
            return int(r.json()["id"])

        events = bot("webhook", {"url": "http://127.0.0.1:9/hook", "secret": "whsec_YmVuY2g="})
        tg = bot("telegram", {"token": "81001:BENCH", "webhook_secret": TG_SECRET})
        wa = bot("whatsapp", {"phone_number_id": "1", "access_token": "t",
                              "app_secret": WA_SECRET, "verify_token": "v"})  # fmt: skip
        return events, tg, wa


async def measure(api_url: str, work: Workload, quick: bool) -> dict[str, Run]:
    n = 4_000 if quick else 40_000
    limits = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=limits) as session:
        singles, hooks = work.singles(), work.webhooks()
        # Warm-up: every user becomes a known subject, keys and bots are looked up once.
        await closed_loop(session, api_url, singles, 50, work.users)
        await closed_loop(session, api_url, hooks, 50, work.users * 2)
        out = {"single": await closed_loop(session, api_url, singles, 50, n)}
        # At most 256 connections (a server's listen queue overflows long before 1,000 s of
        # backlog): requests that wait for one count the wait in their latency.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as paced:
            out["latency"] = await open_loop(paced, api_url, singles, 1000, 4 if quick else 15)
        out["batch"] = await closed_loop(session, api_url, work.batches(1000), 4,
                                         40 if quick else 60)  # fmt: skip
        out["webhook"] = await closed_loop(session, api_url, hooks, 50, n // 2)
    return out


def run_code(tree: Path, args: argparse.Namespace, logs: Path) -> dict[str, Run]:
    redis_url, broker_url = reset(args.redis_url)
    logs.mkdir(parents=True)
    env = {
        **os.environ,
        "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{ROOT}",
        "REENGAGE_DATABASE_URL": DB_URL,
        "REENGAGE_REDIS_URL": redis_url,
        "REENGAGE_BROKER_URL": broker_url,
        "REENGAGE_LOG_JSON": "true",
        "REENGAGE_SECRET_KEY": BENCH_SECRET_KEY,
    }
    created = subprocess.run(
        [sys.executable, "-c", SET_UP_DATABASE, DB_URL],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    api_key = created.split("api key ")[1].split()[0]
    procs = Processes(logs)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    cli = ["-m", "reengage.entrypoints.cli"]
    serve = [*cli, "serve", "--port", str(port)]
    if args.api_workers > 1:
        serve += ["--workers", str(args.api_workers)]
    try:
        procs.start("api", serve, env)
        procs.start("scheduler", [*cli, "scheduler"], env)
        wait_for(lambda: httpx.get(f"{api_url}/healthz").status_code == 200, "api", 60)
        work = Workload(api_key, set_up(api_url, api_key), USERS // 2 if args.quick else USERS)
        return asyncio.run(measure(api_url, work, args.quick))
    finally:
        procs.stop()


def report(name: str, runs: dict[str, Run]) -> None:
    single, latency, batch, hook = runs["single"], runs["latency"], runs["batch"], runs["webhook"]
    errors = {k: r.errors for k, r in runs.items() if r.errors}
    print(
        f"  {name}: single {single.per_s:,.0f} events/s (p99 {single.pct(0.99):.1f} ms at "
        f"concurrency 50); at 1,000 req/s p50 {latency.pct(0.5):.1f} ms p99 "
        f"{latency.pct(0.99):.1f} ms ({latency.per_s:,.0f} events/s served); batches of 1,000 "
        f"{batch.per_s:,.0f} events/s; webhooks {hook.per_s:,.0f} updates/s"
        + (f"; errors {errors}" if errors else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (under 2 minutes)")
    parser.add_argument("--baseline", default=BASELINE, help="commit to compare against")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379", help="Redis server")
    parser.add_argument("--api-workers", type=int, default=1, help="API processes (ours only)")
    args = parser.parse_args()
    began = time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="reengage-http-logs-"))  # kept, for a look afterwards
    with tempfile.TemporaryDirectory(prefix="reengage-http-") as tmp:
        base_tree = checkout(args.baseline, Path(tmp))
        workers = args.api_workers
        args.api_workers = 1
        baseline = run_code(base_tree, args, logs / "baseline")
        args.api_workers = workers
        ours = run_code(ROOT, args, logs / "reengage")
    print(f"http_ingest ({'quick' if args.quick else 'full'}, {time.monotonic() - began:.0f} s):")
    report(f"baseline {args.baseline}", baseline)
    report(f"reengage ({workers} API process{'es' if workers > 1 else ''})", ours)
    for key, run in (("baseline", baseline), ("reengage", ours)):
        print(
            f"{key}: single_events_per_s={run['single'].per_s:.0f} "
            f"p99_ms={run['latency'].pct(0.99):.1f} batch_events_per_s={run['batch'].per_s:.0f} "
            f"webhook_updates_per_s={run['webhook'].per_s:.0f}"
        )
    print(
        f"single_events_per_s={ours['single'].per_s:.0f} "
        f"batch_events_per_s={ours['batch'].per_s:.0f}"
    )


if __name__ == "__main__":
    main()
