"""A Celery worker of whichever reengage code is on `PYTHONPATH`, serving the timer metrics
of its prefork children on a port (the same launcher for every code compared):

    python -m bench.soak_kit.worker --port 19102 --concurrency 2
"""

from __future__ import annotations

import argparse
import os
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    # Before prometheus_client is imported anywhere: the children write, the parent serves.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="soak-metrics-")
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(args.port, addr="127.0.0.1", registry=registry)
    from reengage.entrypoints.worker.celery_app import app

    queues = "timers,recovery"
    argv = ["worker", "-Q", queues, "-c", str(args.concurrency), "-P", "prefork"]
    app.worker_main([*argv, "--loglevel", "INFO"])


if __name__ == "__main__":
    main()
