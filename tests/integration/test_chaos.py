"""Chaos, short: the production topology — the API, 2 schedulers, 2 Celery workers and the
fake Telegram Bot API, each a process of its own, on a private PostgreSQL cluster and a
private Redis (never the shared ones) — with users going quiet and a fault striking while
their recovery messages go out. No message reaches a user twice, and none is lost that was
surely not sent (what may or may not have gone out is recorded as ambiguous).

The long version, with every fault and the figures: `python bench/chaos.py` (bench/README.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.chaos_kit.run import Options, run
from bench.chaos_kit.services import PrivatePostgres, PrivateRedis, free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def services() -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    postgres, redis = PrivatePostgres(free_port()), PrivateRedis(free_port())
    try:
        postgres.init()
        yield postgres, redis
    finally:
        redis.destroy()
        postgres.destroy()


@pytest.mark.timeout(480)
def test_killed_workers_and_restarted_stores_send_nothing_twice_and_lose_nothing_unsent(
    services: tuple[PrivatePostgres, PrivateRedis], tmp_path: Path
) -> None:
    """4 workers SIGKILLed at random moments (each restarted), PostgreSQL stopped at once and
    back 3 s later, and Redis killed and back empty, while 50 users on 5 bots get their two
    steps."""
    postgres, redis = services
    options = Options(
        users=50,
        bots=5,
        worker_kills=4,
        lease=10.0,
        settle_within=240.0,
        platform_port=free_port(),
        api_port=free_port(),
    )
    result = run("worker_kills+postgres_restart+redis_restart", options, postgres, redis, tmp_path)

    figures = result.figures
    assert figures.expected == 100
    assert figures.duplicates == 0, figures.details
    assert figures.lost_unsent == 0, figures.details
    assert figures.unexpected == 0
    assert result.settled, (result.ended, figures.states)
    assert result.recovered, (result.crashes, result.stalled, result.api_ready)
    assert figures.kills == 4
