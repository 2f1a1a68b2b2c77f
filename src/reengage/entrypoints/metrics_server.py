"""Prometheus metrics of the processes that serve no HTTP API (the scheduler and the
workers), and of API processes that share one port.

A prefork worker's timers run in its child processes, and `reengage serve --workers N` runs N
API processes behind one port: none of them can bind a metrics port of its own that a scrape
would find, so they share their metrics through prometheus_client's multiprocess mode (a
directory of memory-mapped files), which must be chosen before prometheus_client is first
imported. The worker's parent serves its children's sums on `--metrics-port`; any API process
serves every API process' sums on `/metrics`.
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


def share_between_processes() -> None:
    """Make this process and the ones it forks write their metrics to one fresh directory.
    Call before anything imports prometheus_client."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="reengage-metrics-")


def registry() -> CollectorRegistry:
    """What a scrape reads: this process' metrics, or every process' when shared."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    shared = CollectorRegistry()
    multiprocess.MultiProcessCollector(shared)  # type: ignore[no-untyped-call]
    return shared


def serve(port: int, host: str) -> None:
    """Serve `/metrics` from a background thread (the children's too, when shared)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=registry())


def child_exited(pid: int) -> None:
    """Let a dead child's live gauges go (counters and histograms stay counted)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
