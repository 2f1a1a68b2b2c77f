"""Prometheus metrics of the processes that serve no HTTP API: the scheduler and the workers.

A prefork worker's timers run in its child processes: their metrics are shared through
prometheus_client's multiprocess mode (a directory of memory-mapped files), which must be
chosen before prometheus_client is first imported, and the parent serves them all.
"""

from __future__ import annotations

import os
import tempfile


def share_between_processes() -> None:
    """Make this process and the ones it forks write their metrics to one fresh directory.
    Call before anything imports prometheus_client."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="reengage-metrics-")


def serve(port: int, host: str) -> None:
    """Serve `/metrics` from a background thread (the children's too, when shared)."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)


def child_exited(pid: int) -> None:
    """Let a dead child's live gauges go (counters and histograms stay counted)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
