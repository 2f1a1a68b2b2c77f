"""Ingest benchmark: reengage (one Redis timer per subject) vs. one Celery countdown per event.

Both paths record the same kind of events through the same hot activity store
(`RedisActivityStore`: dedup, clock merge, dirty mark in one Lua script per batch) and write
them behind to the same PostgreSQL database with `flush`; they differ only in the inactivity
timer. Ours: the Lua script moves the subject's one timer in the Redis timer store. Naive: the
store gets policies without a threshold (the script schedules nothing), and per event the
user's version key is INCRed and a `check_inactive` task is published with
`apply_async(countdown=600)` to a real Redis broker.
Run:

    .venv/bin/python bench/ingest.py [--quick]

It ends with `events_per_s=<ours, ingest>`, `flush_new_per_s=<subjects written behind the
first time> flush_existing_per_s=<subjects already in PostgreSQL>` and, last,
`ratio=<ours ingest events/s / naive ingest events/s>`.
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
import redis
from celery import Celery

from reengage.adapters.db.migrate import upgrade
from reengage.adapters.redis.activity_store import RedisActivityStore
from reengage.config import Settings
from reengage.domain.activity import ActivityEvent, ChannelKind, EventType, subject_key
from reengage.entrypoints.logging import configure_logging
from reengage.runtime import Runtime
from reengage.services.record_activity import bot_policies
from reengage.services.tenancy import create_bot, create_organization
from reengage.timers.redis_store import RedisTimerStore
from reengage.timers.write_behind import WriteBehind

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "reengage_bench"
DB_URL = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
# Databases no test uses (a parallel suite counts down from 13 and 14).
HOT_URL = "redis://127.0.0.1:6379/1"  # ours: Runtime's activity + timer stores (db to itself)
NAIVE_URL = "redis://127.0.0.1:6379/2"  # naive: its activity store, version keys, Celery broker
OURS_NS = "reengage"  # Runtime.build's namespace for both Redis stores
NAIVE_NS = "bench-naive"
QUEUE = "celery"
THRESHOLD = timedelta(minutes=10)
BATCH = 500
BOTS = 4  # per path
SAMPLES = 200  # keys sampled for MEMORY USAGE
PRODUCT_SUBJECTS = 1_000_000

celery_app = Celery("bench", broker=NAIVE_URL)
celery_app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
_broker = redis.Redis.from_url(NAIVE_URL, decode_responses=True)


def _version_key(bot_id: int, user_id: str) -> str:
    return f"bench:naive:version:{bot_id}:{user_id}"


@celery_app.task(name="bench.check_inactive")
def check_inactive(bot_id: int, user_id: str, version: int) -> bool:
    """The naive worker at the countdown: still inactive only if no newer message came in."""
    current = cast(str | None, _broker.get(_version_key(bot_id, user_id)))
    return current is not None and int(current) == version  # the benchmark acts on nothing


def used_memory(client: redis.Redis) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def memory_usage(client: redis.Redis, keys: Sequence[str]) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return [int(v or 0) for v in pipe.execute()]  # type: ignore[no-untyped-call]


def mean_usage(client: redis.Redis, keys: Sequence[str]) -> float:
    """Mean MEMORY USAGE over a sample of keys, which must all exist."""
    picked = random.Random(11).sample(list(keys), min(SAMPLES, len(keys)))
    sizes = memory_usage(client, picked)
    if not all(sizes):
        raise RuntimeError(f"sampled keys missing, e.g. {picked[sizes.index(0)]!r}")
    return sum(sizes) / len(sizes)


class Path:
    """One design: how a batch is recorded, where its hot state and timers live."""

    name = ""
    namespace = ""  # of its RedisActivityStore

    def __init__(
        self,
        rt: Runtime,
        client: redis.Redis,
        activity: RedisActivityStore,
        timers: RedisTimerStore,
    ) -> None:
        self.rt = rt
        self.client = client
        self.activity = activity
        self.timers = timers
        self.publish_seconds = 0.0  # naive only: INCR + apply_async

    def record(self, org_id: int, events: Sequence[ActivityEvent]) -> None:
        raise NotImplementedError

    def pending_timers(self) -> int:
        return self.timers.count()

    def queued(self) -> int:
        return 0

    def timer_bytes(self, people: Sequence[tuple[int, str]]) -> int:
        """MEMORY USAGE of everything the timer mechanism keeps in Redis."""
        raise NotImplementedError

    def hash_key(self, bot_id: int, user_id: str) -> str:
        return f"{{{self.namespace}:activity}}:s:{subject_key(bot_id, user_id)}"


class Ours(Path):
    """The library API: `Runtime.record`, Redis activity store + Redis timer store (db 11)."""

    name = "ours"
    namespace = OURS_NS

    def __init__(self, rt: Runtime) -> None:
        if not isinstance(rt.activity, RedisActivityStore):
            raise RuntimeError("Runtime did not build the Redis activity store")
        if not isinstance(rt.timers, RedisTimerStore):
            raise RuntimeError("Runtime did not build the Redis timer store")
        client = redis.Redis.from_url(HOT_URL, decode_responses=True)
        super().__init__(rt, client, rt.activity, rt.timers)

    def record(self, org_id: int, events: Sequence[ActivityEvent]) -> None:
        self.rt.record(org_id, events)

    def timer_bytes(self, people: Sequence[tuple[int, str]]) -> int:
        return sum(memory_usage(self.client, self.timers.keys))


class Naive(Path):
    """The same `RedisActivityStore` (own namespace, db 12) with policies whose inactivity
    threshold is None, then per event INCR of the version key + `apply_async(countdown)`."""

    name = "naive"
    namespace = NAIVE_NS

    def __init__(self, rt: Runtime) -> None:
        client = redis.Redis.from_url(NAIVE_URL, decode_responses=True)
        timers = RedisTimerStore(client, NAIVE_NS)  # stays empty: no thresholds
        store = RedisActivityStore(
            client,
            timers,
            rt.sessions,
            namespace=NAIVE_NS,
            dedup_per_subject=rt.settings.event_dedup_per_subject,
        )
        super().__init__(rt, client, store, timers)

    def record(self, org_id: int, events: Sequence[ActivityEvent]) -> None:
        # `record_activity`'s steps (the same bot query and store call) with the policies'
        # threshold cleared, so the store's script schedules no reengage timer.
        rt = self.rt
        with rt.sessions() as session:
            bot_ids = {e.bot_id for e in events}
            default = rt.settings.default_inactivity_threshold
            policies = bot_policies(session, org_id, bot_ids, default)
        if bot_ids - policies.keys():
            raise LookupError(f"unknown bots {bot_ids - policies.keys()}")
        untimed = {b: replace(p, inactivity_threshold=None) for b, p in policies.items()}
        self.activity.record(org_id, untimed, events, rt.clock.now())
        began = time.perf_counter()
        countdown = THRESHOLD.total_seconds()
        for e in events:
            version = int(cast(int, _broker.incr(_version_key(e.bot_id, e.user_id))))
            check_inactive.apply_async((e.bot_id, e.user_id, version), countdown=countdown)
        self.publish_seconds += time.perf_counter() - began

    def queued(self) -> int:
        return int(cast(int, self.client.llen(QUEUE)))

    def timer_bytes(self, people: Sequence[tuple[int, str]]) -> int:
        versions = [_version_key(b, u) for b, u in people]
        return sum(memory_usage(self.client, [QUEUE, *versions]))


@dataclass
class Phase:
    """One path's share of a run: its events, timings and what it left in Redis."""

    name: str
    path: Path
    people: list[tuple[int, str]]  # all subjects of the path (for the naive version keys)
    events: list[ActivityEvent]
    seconds: float = 0.0  # inside path.record(), summed over batches
    publish_seconds: float = 0.0  # of which INCR + apply_async (naive)
    mem_delta: int = 0  # used_memory change around this path's batches, summed
    subjects: int = 0
    pending: int = 0  # timers pending in the path's reengage timer store
    queued: int = 0  # tasks in the Celery queue
    timer_bytes: int = 0  # MEMORY USAGE of the timer mechanism's keys
    hash_bytes: float = 0.0  # mean MEMORY USAGE of a subject hash
    flush_seconds: float = 0.0
    flushed: int = 0

    @property
    def n(self) -> int:
        return len(self.events)

    @property
    def rate(self) -> float:
        return self.n / self.seconds


def reset_database(create: bool = True) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if create:
            conn.execute(f"CREATE DATABASE {DB_NAME}")


def clear_redis(keep_bindings: bool = True) -> None:
    """Empty the benchmark dbs; kombu's queue bindings stay unless asked (publishing needs
    them once the producer has declared its queue)."""
    redis.Redis.from_url(HOT_URL).flushdb()
    stale = [
        k
        for k in _broker.scan_iter(count=10_000)
        if not (keep_bindings and k.startswith("_kombu."))
    ]
    for start in range(0, len(stale), 10_000):
        _broker.delete(*stale[start : start + 10_000])


def subjects(bots: list[int], prefix: str, count: int) -> list[tuple[int, str]]:
    return [(bots[i % len(bots)], f"{prefix}-u{i}") for i in range(count)]


def round_robin(prefix: str, people: list[tuple[int, str]], n: int) -> list[ActivityEvent]:
    """n events cycling over the subjects: each one's 1st event opens it, then it is returning."""
    start = datetime.now(UTC)
    out = []
    for i in range(n):
        bot, user = people[i % len(people)]
        kind = EventType.USER_MESSAGE if (i // len(people)) % 2 == 0 else EventType.BOT_MESSAGE
        out.append(
            ActivityEvent(f"{prefix}-e{i}", kind, bot, user, start + timedelta(milliseconds=i))
        )
    return out


def chatty(prefix: str, people: list[tuple[int, str]], n: int) -> list[ActivityEvent]:
    """n events at random over existing subjects, user and bot messages alternating."""
    rng = random.Random(7)
    start = datetime.now(UTC)
    kinds = (EventType.USER_MESSAGE, EventType.BOT_MESSAGE)
    return [
        ActivityEvent(
            f"{prefix}-e{i}", kinds[i % 2], *rng.choice(people), start + timedelta(milliseconds=i)
        )
        for i in range(n)
    ]


def record_all(path: Path, org_id: int, events: Sequence[ActivityEvent]) -> None:
    for start in range(0, len(events), BATCH):
        path.record(org_id, events[start : start + BATCH])


def flush_all(path: Path) -> None:
    while path.activity.flush(path.rt.clock.now()):
        pass


def ingest(phases: list[Phase], org_id: int) -> None:
    """Record every phase's events in batches, the phases' batches interleaved (alternating
    who goes first), so both paths see the same machine, database and Redis over time."""
    for phase in phases:
        phase.path.publish_seconds = 0.0
    batches = max(len(p.events) for p in phases)
    for i, start in enumerate(range(0, batches, BATCH)):
        for phase in phases if i % 2 == 0 else phases[::-1]:
            batch = phase.events[start : start + BATCH]
            if not batch:
                continue
            before = used_memory(phase.path.client)
            began = time.perf_counter()
            phase.path.record(org_id, batch)
            phase.seconds += time.perf_counter() - began
            phase.mem_delta += used_memory(phase.path.client) - before
    for phase in phases:
        phase.publish_seconds = phase.path.publish_seconds


def measure(phase: Phase, org_id: int) -> None:
    """What the ingest left in Redis (before any flush)."""
    path = phase.path
    touched = sorted({(e.bot_id, e.user_id) for e in phase.events})
    phase.subjects = len(touched)
    phase.pending = path.pending_timers()
    phase.queued = path.queued()
    phase.timer_bytes = path.timer_bytes(phase.people)
    phase.hash_bytes = mean_usage(path.client, [path.hash_key(b, u) for b, u in touched])


def flush(phases: list[Phase]) -> None:
    """Write every dirty subject behind to PostgreSQL as a scheduler's write-behind threads
    do (`WriteBehind`, the default number of threads), one phase after the other."""
    for phase in phases:
        rt = phase.path.rt
        threads = Settings.model_fields["write_behind_threads"].default
        began = time.perf_counter()
        written = WriteBehind(
            phase.path.activity, rt.clock, threads=threads, interval=timedelta(seconds=1)
        ).drain()
        phase.flush_seconds += time.perf_counter() - began
        phase.flushed += written


def report(p: Phase) -> None:
    print(
        f"[{p.name}] events={p.n:,} subjects={p.subjects:,} ingest {p.seconds:.2f} s "
        f"= {p.rate:,.0f} events/s; used_memory {p.mem_delta:+,} B over its batches; "
        f"pending timers={p.pending:,} queued tasks={p.queued:,}; "
        f"flush {p.flushed:,} subjects in {p.flush_seconds:.2f} s"
    )


def table(phases: list[Phase]) -> None:
    def per(p: Phase, seconds: float) -> str:
        return f"{1e6 * seconds / p.n:,.1f}"

    rows: list[tuple[str, ...]] = [
        ("", *(p.name for p in phases)),
        ("events", *(f"{p.n:,}" for p in phases)),
        ("subjects", *(f"{p.subjects:,}" for p in phases)),
        ("ingest seconds", *(f"{p.seconds:.2f}" for p in phases)),
        ("ingest events/s", *(f"{p.rate:,.0f}" for p in phases)),
        ("ingest us/event", *(per(p, p.seconds) for p in phases)),
        ("  record (hot state)", *(per(p, p.seconds - p.publish_seconds) for p in phases)),
        ("  INCR + apply_async", *(per(p, p.publish_seconds) for p in phases)),
        ("used_memory delta (B)", *(f"{p.mem_delta:+,}" for p in phases)),
        ("  per event (B)", *(f"{p.mem_delta / p.n:,.0f}" for p in phases)),
        ("pending reengage timers", *(f"{p.pending:,}" for p in phases)),
        ("queued Celery tasks", *(f"{p.queued:,}" for p in phases)),
        ("timer state MEMORY USAGE (B)", *(f"{p.timer_bytes:,}" for p in phases)),
        ("flush seconds", *(f"{p.flush_seconds:.2f}" for p in phases)),
        ("flush subjects", *(f"{p.flushed:,}" for p in phases)),
        ("flush subjects/s", *(f"{p.flushed / p.flush_seconds:,.0f}" for p in phases)),
        ("flush events/s equiv.", *(f"{p.n / p.flush_seconds:,.0f}" for p in phases)),
        (
            "ingest+flush events/s",
            *(f"{p.n / (p.seconds + p.flush_seconds):,.0f}" for p in phases),
        ),
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                cell.rjust(w) if c else cell.ljust(w)
                for c, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def memory_summary(ours: Phase, naive: Phase, chat: Phase, timers_before_chat: int) -> None:
    per_timer = ours.timer_bytes / ours.pending
    print(
        f"memory: per pending timer {per_timer:,.0f} B (timer zset + hash / {ours.pending:,}); "
        f"per subject hash {ours.hash_bytes:,.0f} B (mean of {SAMPLES} samples, its last "
        f"event ids included)"
    )
    print(
        f"memory, naive: per queued task {naive.timer_bytes / max(1, naive.queued):,.0f} B "
        f"(queue list + version keys / {naive.queued:,} tasks); "
        f"per subject hash {naive.hash_bytes:,.0f} B"
    )
    per_subject = per_timer + ours.hash_bytes
    print(
        f"projection for {PRODUCT_SUBJECTS:,} tracked subjects: timer + subject hash "
        f"= {per_subject:,.0f} B each = {per_subject * PRODUCT_SUBJECTS / 2**20:,.0f} MiB "
        f"while they are hot (quiet ones leave Redis after hot_state_idle)"
    )
    growth = chat.timer_bytes - timers_before_chat
    print(
        f"activity only: {chat.n:,} more events over {chat.subjects:,} subjects: timer "
        f"state {timers_before_chat:,} -> {chat.timer_bytes:,} B ({growth:+,}), "
        f"pending timers {chat.pending:,}; used_memory {chat.mem_delta:+,} B "
        f"= {chat.mem_delta / chat.n:,.0f} B/event (event ids are kept per subject, the "
        f"last event_dedup_per_subject of them)"
    )


def database_check(bots: dict[str, list[int]]) -> None:
    """Conversations written behind per path (warm-up subjects excluded)."""
    with psycopg.connect(DB_URL) as conn:
        for name, ids in bots.items():
            rows, seqs, due = conn.execute(
                "SELECT count(*), coalesce(sum(v.activity_seq), 0), count(v.inactivity_due_at) "
                "FROM conversation v JOIN contact c ON c.id = v.contact_id "
                "WHERE v.bot_id = ANY(%s) AND c.external_id NOT LIKE 'warm-%%'",
                (ids,),
            ).fetchone() or (0, 0, 0)
            print(
                f"database [{name}]: conversations={rows:,} sum(activity_seq)={seqs:,} "
                f"with inactivity_due_at={due:,}"
            )


def make_bots(rt: Runtime, org_id: int, prefix: str, threshold: timedelta) -> list[int]:
    now = rt.clock.now()
    return [
        create_bot(
            rt.sessions,
            rt.credentials,
            org_id,
            name=f"{prefix}{i}",
            channel=ChannelKind.WHATSAPP if i % 2 else ChannelKind.TELEGRAM,
            now=now,
            inactivity_threshold=threshold,
        ).id
        for i in range(BOTS)
    ]


def stage(label: str, client: redis.Redis, phases: list[Phase], org_id: int) -> None:
    """Ingest the phases together, measure Redis, then flush them to PostgreSQL."""
    before = used_memory(client)
    ingest(phases, org_id)
    after = used_memory(client)
    print(f"{label}: Redis used_memory (server) {before:,} -> {after:,} B ({after - before:+,})")
    for phase in phases:
        measure(phase, org_id)
    flush(phases)
    for phase in phases:
        report(phase)


def bench(rt: Runtime, began: float, n: int, people_n: int, n_chat: int, chat_people: int) -> None:
    org = create_organization(rt.sessions, "bench", rt.clock.now()).org_id
    ours, naive = Ours(rt), Naive(rt)
    ours_bots = make_bots(rt, org, "ours", THRESHOLD)
    naive_bots = make_bots(rt, org, "naive", THRESHOLD)  # Naive clears it per batch
    # Warm-up (untimed): connection pools, Lua script cache, Celery producer, flush path.
    for path, bots in ((ours, ours_bots), (naive, naive_bots)):
        warm = subjects(bots, f"warm-{path.name}", BATCH // 4)
        record_all(path, org, round_robin(f"warm-{path.name}", warm, BATCH))
        flush_all(path)
    clear_redis()
    # What a scheduler does once when it finds Redis emptied: bring the database's subjects
    # back, after which a new subject is known new without a database read.
    for path in (ours, naive):
        while not path.activity.restore(rt.clock.now()):
            pass

    ours_people = subjects(ours_bots, "ours", people_n)
    naive_people = subjects(naive_bots, "naive", people_n)
    print(
        f"PostgreSQL {DB_NAME} + Redis 127.0.0.1:6379; batches of {BATCH}; {BOTS} bots per path; "
        f"threshold {THRESHOLD}; {n:,} events over {people_n:,} subjects per path "
        f"(round robin: 1 event in {n // people_n} opens a subject); batches interleaved"
    )
    p_ours = Phase("ours", ours, ours_people, round_robin("ours", ours_people, n))
    p_naive = Phase("naive", naive, naive_people, round_robin("naive", naive_people, n))
    stage("ours + naive", ours.client, [p_ours, p_naive], org)
    hot = ours_people[:chat_people]
    p_chat = Phase("activity-only", ours, ours_people, chatty("chat", hot, n_chat))
    stage("activity only (ours)", ours.client, [p_chat], org)

    expected = len(ours_people)
    verdict = "one per subject" if p_chat.pending == expected else f"MISMATCH, want {expected:,}"
    print(
        f"pending reengage timers after {n + n_chat:,} events over {expected:,} subjects: "
        f"{p_chat.pending:,} ({verdict}); naive: {p_naive.pending:,} timers, "
        f"{p_naive.queued:,} queued tasks"
    )
    database_check({"ours": ours_bots, "naive": naive_bots})
    memory_summary(p_ours, p_naive, p_chat, p_ours.timer_bytes)
    print(
        "note: no Celery worker runs; one would also fetch every countdown task and hold it "
        "in memory until its ETA, on top of the queue measured here"
    )
    table([p_ours, p_naive, p_chat])
    print(f"(run time so far {time.perf_counter() - began:.0f} s)")
    print(f"events_per_s={p_ours.rate:.0f}")
    print(
        f"flush_new_per_s={p_ours.flushed / p_ours.flush_seconds:.0f} "
        f"flush_existing_per_s={p_chat.flushed / p_chat.flush_seconds:.0f}"
    )
    print(f"ratio={p_ours.rate / p_naive.rate:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes (< 60 s)")
    args = parser.parse_args()
    sizes = (20_000, 5_000, 20_000, 4_000) if args.quick else (100_000, 25_000, 200_000, 10_000)
    configure_logging(level=logging.WARNING)
    began = time.perf_counter()
    reset_database()
    upgrade(DB_URL)
    clear_redis()
    rt = Runtime.build(Settings(database_url=DB_URL, redis_url=HOT_URL, broker_url=None))
    try:
        bench(rt, began, *sizes)
    finally:
        rt.close()
        clear_redis(keep_bindings=False)
        reset_database(create=False)


if __name__ == "__main__":
    main()
