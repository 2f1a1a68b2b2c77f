"""The "09:00 herd": N recovery episodes on B Telegram bots all due at one instant, drained
through the production processes, side by side with a baseline commit of the code.

Each run starts from an empty database and Redis: the fake Bot API in its own process (Telegram's
flood control enforced in real time: 30 messages/s per bot, one per second per chat), the API
(`reengage serve`, which runs no timers), bots with a one-step campaign (threshold 1 minute,
step 1 minute, one text block) created over the API, and N users who each wrote once, 3 minutes
ago (`POST /v1/events` with `occurred_at`): every silence, episode start and step is overdue at
once. Then the work starts — in one scheduler process that runs it in-process (`inline`), or one
scheduler handing it to Celery worker processes (`celeryx1`, `celeryx2`, each `--concurrency
1`) — and the run ends when the fake has accepted all N messages.

Per run: drain seconds (from the scheduler's start to the N-th message accepted),
deliveries/s, re-claims (delivery rows taken for sending more than once: pacing hand-backs and
expired leases), the fake's flood-control refusals, and CPU milliseconds per delivery of the
scheduler and workers (all their processes; then each one's share) and of PostgreSQL and Redis.

The baseline is another commit's `src/` and `migrations/` (`git archive`), run by the same
processes with `PYTHONPATH` pointing at it; the fake platform is always this checkout's. The
last line is `deliveries_per_s=<ours, celeryx2> ratio=<ours / baseline>`. The machine's own
speed drifts by tens of percent over minutes: `--pairs N` runs each mode N times per code, in
pairs back to back (the first of each pair in turn), and prints medians, the last line's ratio
the median of the pairs' ratios. Run from the repository root:

    .venv/bin/python bench/herd.py [--quick] [--baseline REF] [--pairs N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.baseline import checkout  # noqa: E402
from bench.chaos_kit.services import BENCH_SECRET_KEY, free_port, wait_for  # noqa: E402
from bench.chaos_kit.topology import _group  # noqa: E402
from bench.cpu import process_cpu_s, store_cpu_s  # noqa: E402

BASELINE = "897fa4c"  # the code before the work behind each timer was made set-based
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "reengage_bench_herd"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/8"
BROKER_URL = "redis://127.0.0.1:6379/7"
TOKEN_BASE = 91_000
USER_BASE = 500_000
CAMPAIGN = {
    "threshold": "1m",
    "steps": [{"schedule": "1m", "blocks": [{"kind": "text", "text": "Ainda por aí? 🛒"}]}],
}


SET_UP_DATABASE = """
import sys
from datetime import UTC, datetime
from reengage.adapters.db.migrate import upgrade
from reengage.adapters.db.session import make_engine, make_session_factory
from reengage.services.tenancy import create_organization
upgrade(sys.argv[1])
sessions = make_session_factory(make_engine(sys.argv[1]))
created = create_organization(sessions, "herd", datetime.now(UTC))
print("api key", created.api_key)
"""


@dataclass(frozen=True)
class Figures:
    drain_s: float
    sent: int
    reclaims: int
    rate_limited: int
    cpu_ms: float  # scheduler + workers, per delivery
    store_cpu_ms: float  # PostgreSQL + Redis, per delivery
    late_p50_s: float = 0.0  # when the messages were accepted, after the scheduler started
    late_p99_s: float = 0.0
    started_at: float = 0.0  # wall clock (time.time) when the scheduler started
    cpu_ms_by: dict[str, float] = field(default_factory=dict)  # per process, per delivery

    @property
    def per_s(self) -> float:
        return self.sent / self.drain_s


@dataclass(frozen=True)
class Stores:
    """The database and Redis dbs a run uses (another bench gives its own, so that two
    benches never share them)."""

    db_name: str = DB_NAME
    redis_url: str = REDIS_URL
    broker_url: str = BROKER_URL

    @property
    def db_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:5432/{self.db_name}"


@dataclass(frozen=True)
class Extra:
    """More work around a herd: `prepare(api)` once the bots and users are set up (the client
    authenticated), and the run ends only when `done()` holds too (after the messages)."""

    prepare: Callable[[httpx.Client], None] = lambda api: None
    done: Callable[[], bool] = lambda: True


HERD_STORES = Stores()


def workers_of(mode: str) -> list[str]:
    """The queues of each Celery worker a herd mode starts (none: `inline`)."""
    if mode.startswith("celery"):
        return ["timers,recovery"] * int(mode.split("x")[1])
    return []


def reset(stores: Stores = HERD_STORES) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {stores.db_name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {stores.db_name}")
    for url in (stores.redis_url, stores.broker_url):
        redis.Redis.from_url(url).flushdb()


class Processes:
    """Processes started in sessions of their own, logging to files; all stopped at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.popens: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Path:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            self.popens[name] = subprocess.Popen(
                [sys.executable, *argv],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return log

    def cpu_s(self, names: list[str]) -> float:
        """User + system CPU of the named processes and their children, so far."""
        return sum(process_cpu_s(pid) for name in names for pid in _group(self.popens[name].pid))

    def stop(self) -> None:
        for popen in self.popens.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
        for popen in self.popens.values():
            try:
                popen.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
        self.popens.clear()


def _log_has(log: Path, marker: str) -> bool:
    return marker in log.read_text(errors="replace")


def tree_env(tree: Path, db_url: str, redis_url: str, broker_url: str) -> dict[str, str]:
    """The environment of the processes that run the code under `tree`."""
    return {
        **os.environ,
        "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{ROOT}",
        "REENGAGE_DATABASE_URL": db_url,
        "REENGAGE_REDIS_URL": redis_url,
        "REENGAGE_BROKER_URL": broker_url,
        "REENGAGE_LOG_JSON": "true",
        "REENGAGE_SECRET_KEY": BENCH_SECRET_KEY,
    }


def set_up_database(env: dict[str, str], db_url: str) -> str:
    """The schema and an organization, by the tree's own code, in one process: its API key."""
    created = subprocess.run(
        [sys.executable, "-c", SET_UP_DATABASE, db_url],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return created.split("api key ")[1].split()[0]


def run(
    tree: Path,
    workers: Sequence[str],
    users: int,
    bots: int,
    logs: Path,
    stores: Stores = HERD_STORES,
    extra: Extra | None = None,
) -> Figures:
    """One herd on a fresh database: set up through the API, then drain it, by one scheduler
    and a Celery worker (`--concurrency 1`) per entry of `workers` (its queues), or by the
    scheduler alone (in-process) when there are none."""
    reset(stores)
    logs.mkdir(parents=True)
    env = tree_env(tree, stores.db_url, stores.redis_url, stores.broker_url)
    cli = ["-m", "reengage.entrypoints.cli"]
    procs = Processes(logs)
    platform_port, api_port = free_port(), free_port()
    platform_url, api_url = f"http://127.0.0.1:{platform_port}", f"http://127.0.0.1:{api_port}"
    env["REENGAGE_TELEGRAM_API_BASE"] = platform_url
    head_env = {**env, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    extra = extra or Extra()
    try:
        # Everything that is not measured starts at once: the fake while the schema is made,
        # then the API and the workers together (the herd starts with the scheduler).
        procs.start(
            "platform", ["-m", "bench.chaos_kit.platform", "--port", str(platform_port)], head_env
        )
        api_key = set_up_database(env, stores.db_url)
        procs.start("api", [*cli, "serve", "--port", str(api_port)], env)
        work = [f"worker-{i + 1}" for i in range(len(workers))]
        worker_logs = [
            procs.start(name, [*cli, "worker", "--queues", queues, "--concurrency", "1"], env)
            for name, queues in zip(work, workers, strict=True)
        ]
        with (
            httpx.Client(base_url=api_url, timeout=60) as api,
            httpx.Client(base_url=platform_url, timeout=10) as platform,
        ):
            wait_for(lambda: platform.get("/_control/count").status_code == 200, "platform", 60)
            wait_for(lambda: api.get("/healthz").status_code < 500, "api", 60)
            set_up(api, api_key, users, bots)
            extra.prepare(api)
            for name, log in zip(work, worker_logs, strict=True):
                wait_for(lambda log=log: _log_has(log, " ready."), name, 90)  # type: ignore[misc]
            scheduler_env = env if workers else {**env, "REENGAGE_BROKER_URL": ""}
            cpu0_by = {name: procs.cpu_s([name]) for name in work}
            cpu0, store0 = sum(cpu0_by.values()), store_cpu_s()
            log = procs.start("scheduler", [*cli, "scheduler"], scheduler_env)
            wait_for(lambda: _log_has(log, "scheduler.started"), "scheduler", 90)
            started, wall = time.monotonic(), time.time()
            cpu0_by["scheduler"] = procs.cpu_s(["scheduler"])  # its start-up is not the herd's
            cpu0 += cpu0_by["scheduler"]
            work.append("scheduler")
            count = {"sent": 0, "rate_limited": 0}
            deadline = started + max(120.0, users / 10)
            while count["sent"] < users and time.monotonic() < deadline:
                time.sleep(0.1)
                count = platform.get("/_control/count").json()
            drained = time.monotonic() - started
            while not extra.done() and time.monotonic() < deadline:
                time.sleep(0.2)
            cpu, store = procs.cpu_s(work) - cpu0, store_cpu_s() - store0
            cpu_by = {name: procs.cpu_s([name]) - cpu0_by[name] for name in work}
            if count["sent"] < users or not extra.done():
                raise RuntimeError(f"{workers}: {count['sent']} of {users} sent by the deadline")
            late = sorted(
                r["ended"] - wall
                for r in platform.get("/_control/requests", params={"since": wall}).json()
                if r["path"].endswith("/sendMessage") and r["outcome"] == 200
            )
    finally:
        procs.stop()
    with psycopg.connect(stores.db_url) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(attempts), 0) FROM delivery WHERE status = 'sent'"
        ).fetchone()
    assert row is not None
    sent, attempts = int(row[0]), int(row[1])
    return Figures(
        drained,
        sent,
        attempts - sent,
        int(count["rate_limited"]),
        cpu * 1000 / sent,
        store * 1000 / sent,
        late[len(late) // 2],
        late[min(len(late) - 1, int(len(late) * 0.99))],
        wall,
        {name: s * 1000 / sent for name, s in cpu_by.items()},
    )


def set_up(api: httpx.Client, api_key: str, users: int, bots: int) -> None:
    """Bots with a live campaign, and users who wrote once, 3 minutes ago."""
    api.headers["Authorization"] = f"Bearer {api_key}"
    ids = []
    for i in range(1, bots + 1):
        body = {
            "name": f"herd-{i}",
            "channel": "telegram",
            "credentials": {"token": f"{TOKEN_BASE + i}:HERD"},
        }
        bot = _ok(api.post("/v1/bots", json=body))["id"]
        _ok(api.put(f"/v1/bots/{bot}/campaign", json=CAMPAIGN))
        _ok(api.post(f"/v1/bots/{bot}/campaign/publish"))
        _ok(api.put(f"/v1/bots/{bot}/campaign/enabled", json={"enabled": True}))
        ids.append(bot)
    at = (datetime.now(UTC) - timedelta(minutes=3)).isoformat()
    events = [
        {
            "id": f"herd-{u}",
            "type": "message.user",
            "bot_id": ids[u % bots],
            "user_id": str(USER_BASE + u),
            "occurred_at": at,
        }
        for u in range(users)
    ]
    for start in range(0, users, 1_000):
        _ok(api.post("/v1/events", json={"events": events[start : start + 1_000]}))


def _ok(response: httpx.Response) -> dict[str, object]:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    body: dict[str, object] = response.json() if response.content else {}
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="500 episodes, celeryx2 only")
    parser.add_argument("--baseline", default=BASELINE, help="the commit to compare with")
    parser.add_argument("--episodes", type=int, help="episodes (default 10,000; quick 500)")
    parser.add_argument("--bots", type=int, help="bots (default 50; quick 10)")
    parser.add_argument(
        "--modes", help="comma-separated, of inline, celeryx1, celeryx2 (celeryx2 always runs)"
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="runs of each code per mode, in pairs of alternating order; figures are medians",
    )
    args = parser.parse_args()
    users, bots = (500, 10) if args.quick else (10_000, 50)
    users, bots = args.episodes or users, args.bots or bots
    modes = ["celeryx2"] if args.quick else ["inline", "celeryx1", "celeryx2"]
    if args.modes:
        modes = [m for m in ("inline", "celeryx1", "celeryx2") if m in args.modes.split(",")]
        modes = modes if "celeryx2" in modes else [*modes, "celeryx2"]
    work = Path(tempfile.mkdtemp(prefix="reengage-herd-"))
    trees = {"baseline": checkout(args.baseline, work), "reengage": ROOT}
    print(f"{users:,} episodes on {bots} bots due at one instant; baseline {args.baseline}")
    print(f"process logs: {work}")
    print(
        f"{'mode':10} {'code':9} {'drain s':>8} {'deliv/s':>8} {'re-claims':>9} "
        f"{'429s':>5} {'cpu ms/deliv':>12} {'pg+redis ms':>11}"
    )
    results: dict[tuple[str, str], list[Figures]] = {}
    for mode in modes:
        for pair in range(args.pairs):
            # The machine's own speed drifts over minutes: each pair runs both codes back to
            # back, the first of them in turn.
            names = list(trees) if pair % 2 == 0 else list(reversed(trees))
            for name in names:
                logs = work / (f"{mode}-{name}" + (f"-{pair + 1}" if args.pairs > 1 else ""))
                f = run(trees[name], workers_of(mode), users, bots, logs)
                results.setdefault((mode, name), []).append(f)
                print_row(mode, name, f)
    if args.pairs > 1:
        print(f"medians of {args.pairs} runs (min-max):")
        for (mode, name), runs in results.items():
            print(
                f"{mode:10} {name:9} drain {spread([r.drain_s for r in runs], '.1f')} s, "
                f"{spread([r.per_s for r in runs], '.0f')} deliveries/s, CPU "
                f"{spread([r.cpu_ms for r in runs], '.2f')} + "
                f"{spread([r.store_cpu_ms for r in runs], '.2f')} ms"
            )
    for name in trees:
        if ("celeryx1", name) in results:
            gain = _median(results["celeryx2", name], "per_s") / _median(
                results["celeryx1", name], "per_s"
            )
            print(f"horizontal_{name}={gain:.2f}")
    ours, base = results["celeryx2", "reengage"], results["celeryx2", "baseline"]
    ratios = [o.per_s / b.per_s for o, b in zip(ours, base, strict=True)]
    cpu = [
        (b.cpu_ms + b.store_cpu_ms) / (o.cpu_ms + o.store_cpu_ms)
        for o, b in zip(ours, base, strict=True)
    ]
    if args.pairs > 1:
        print(
            f"per pair: deliveries/s ratio {spread(ratios, '.2f')}, less CPU {spread(cpu, '.2f')}"
        )
    print(
        f"drain_s={_median(ours, 'drain_s'):.1f} cpu_ms_per_delivery={_median(ours, 'cpu_ms'):.2f}"
    )
    print(f"deliveries_per_s={_median(ours, 'per_s'):.0f} ratio={statistics.median(ratios):.2f}")


def print_row(mode: str, name: str, f: Figures) -> None:
    by = " ".join(f"{process} {ms:.2f}" for process, ms in f.cpu_ms_by.items())
    print(
        f"{mode:10} {name:9} {f.drain_s:>8.1f} {f.per_s:>8.0f} {f.reclaims:>9} "
        f"{f.rate_limited:>5} {f.cpu_ms:>12.2f} {f.store_cpu_ms:>11.2f}   ({by})",
        flush=True,
    )


def spread(values: Sequence[float], fmt: str) -> str:
    """The median, then min-max when there is more than one value."""
    median = format(statistics.median(values), fmt)
    if len(values) == 1:
        return median
    return f"{median} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def _median(runs: Sequence[Figures], figure: str) -> float:
    return float(statistics.median(getattr(r, figure) for r in runs))


if __name__ == "__main__":
    main()
