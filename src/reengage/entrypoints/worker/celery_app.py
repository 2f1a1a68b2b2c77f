"""The Celery application. Tasks have stable dotted names; the broker comes from Settings."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from reengage.adapters.outage import Outage, is_outage
from reengage.config import Settings
from reengage.entrypoints import metrics_server
from reengage.entrypoints.logging import configure_logging_from
from reengage.entrypoints.startup import settle_heap
from reengage.runtime import Runtime
from reengage.timers.executors import (
    FIRE_TIMERS_TASK,
    claimed_from_wire,
    observe,
)

QUEUES = ("timers", "recovery")


def make_celery(settings: Settings) -> Celery:
    app = Celery("reengage", broker=settings.broker_url or "memory://")
    app.conf.update(
        task_default_queue="timers",
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_prefetch_multiplier=4,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # Work is due now: nothing here is delayed on the broker, so Redis' visibility
        # timeout never re-delivers long countdowns (the lease in the timer store retries).
        broker_transport_options={"visibility_timeout": 3600},
    )
    return app


settings = Settings()
app = make_celery(settings)
_runtime: Runtime | None = None


_building = threading.Lock()
_outage = Outage("worker")


def runtime() -> Runtime:
    """This process' runtime, built once (the threads pool calls this concurrently)."""
    global _runtime
    with _building:
        if _runtime is None:
            _runtime = Runtime.build(settings)
            settle_heap()
        return _runtime


@worker_process_init.connect
def _fresh_runtime_after_fork(**_: Any) -> None:
    # Connections must not be shared across a fork.
    global _runtime
    _runtime = None
    configure_logging_from(settings)


@worker_process_shutdown.connect
def _child_metrics_done(pid: int, **_: Any) -> None:
    metrics_server.child_exited(pid)


@app.task(name=FIRE_TIMERS_TASK)
def fire_timers_task(chunk: list[dict[str, Any]], now_iso: str) -> int:
    """Execute a chunk of claimed timers; `now` is the scheduler's claim time."""
    claimed = [claimed_from_wire(item) for item in chunk]
    try:
        rt = runtime()
        report = rt.timer_engine.fire(claimed, datetime.fromisoformat(now_iso))
    except Exception as exc:
        if not is_outage(exc):
            raise
        # The database or Redis is away: one line when it goes, one when it is back, not a
        # traceback per chunk; the chunk's timers are claimed again when their lease ends.
        _outage.failed(exc)
        return 0
    _outage.succeeded()
    observe(report.executed, rt.clock.now())
    return len(report.executed)
