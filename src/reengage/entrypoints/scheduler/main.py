"""The scheduler process: embedded (in-process execution) or distributed (Celery)."""

from __future__ import annotations

import signal
import threading
from functools import partial

from reengage.config import Settings
from reengage.entrypoints.startup import settle_heap
from reengage.events.sender import EVENTS_QUEUE
from reengage.ports import TimerExecutor
from reengage.runtime import Runtime
from reengage.services.retention import prune_history
from reengage.timers.executors import CeleryExecutor, InlineExecutor
from reengage.timers.scheduler import Scheduler
from reengage.timers.write_behind import WriteBehind


def build_scheduler(settings: Settings, runtime: Runtime | None = None) -> Scheduler:
    runtime = runtime or Runtime.build(settings)
    executor: TimerExecutor
    if settings.embedded:
        # Events out on a thread of their own (SQLite has one writer: there, in line).
        apart = () if runtime.engine.dialect.name == "sqlite" else (EVENTS_QUEUE,)
        executor = InlineExecutor(runtime, apart=apart)
    else:
        from reengage.entrypoints.worker.celery_app import make_celery

        executor = CeleryExecutor(make_celery(settings), runtime)
    return Scheduler(
        sessions=runtime.sessions,
        store=runtime.timers,
        executor=executor,
        registry=runtime.registry,
        clock=runtime.clock,
        batch=settings.scheduler_batch,
        lease=settings.timer_lease,
        poll=settings.scheduler_poll,
        sweep_interval=settings.sweep_interval,
        activity=runtime.activity,
        flush_interval=settings.flush_interval,
        prune=partial(prune_history, runtime.sessions, retention_days=settings.retention_days),
        prune_interval=settings.prune_interval,
        write_behind=write_behind(settings, runtime),
    )


def write_behind(settings: Settings, runtime: Runtime) -> WriteBehind | None:
    """The scheduler's write-behind threads: with Redis (activity lands there first) and
    PostgreSQL. SQLite has one writer: its scheduler flushes in its own loop."""
    if not settings.redis_url or runtime.engine.dialect.name == "sqlite":
        return None
    if settings.write_behind_threads == 0:
        return None
    return WriteBehind(
        runtime.activity,
        runtime.clock,
        threads=settings.write_behind_threads,
        interval=settings.flush_interval,
    )


def run_until(stop: threading.Event, settings: Settings, runtime: Runtime | None = None) -> None:
    """A scheduler process' life: built, its heap settled, run until `stop` is set."""
    scheduler = build_scheduler(settings, runtime)
    settle_heap()
    scheduler.run(stop)


def run_forever(settings: Settings) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_until(stop, settings)
