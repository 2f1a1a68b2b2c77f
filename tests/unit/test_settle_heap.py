"""Long-running processes settle their heap once built: what starting left behind is
collected, the rest is frozen out of the collector's sight, and the work runs after."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from reengage.entrypoints.scheduler import main as scheduler_main
from reengage.entrypoints.startup import settle_heap
from reengage.entrypoints.worker import celery_app


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process keeps collecting what it frees


class Cycle:
    me: Cycle | None = None


def test_what_starting_left_behind_is_collected_and_the_rest_frozen(thawed: None) -> None:
    garbage = Cycle()
    garbage.me = garbage  # freed only by the collector
    gone = weakref.ref(garbage)
    kept = Cycle()
    del garbage
    settle_heap()
    assert gone() is None
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())  # frozen: not walked by a collection


def test_the_scheduler_process_settles_after_building_and_before_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[str] = []

    class Built:
        def run(self, stop: threading.Event) -> None:
            steps.append("run")

    def build(settings: object, runtime: object = None) -> Built:
        steps.append("build")
        return Built()

    monkeypatch.setattr(scheduler_main, "build_scheduler", build)
    monkeypatch.setattr(scheduler_main, "settle_heap", lambda: steps.append("settle"))
    scheduler_main.run_until(threading.Event(), object())  # type: ignore[arg-type]
    assert steps == ["build", "settle", "run"]


def test_a_worker_process_settles_once_its_runtime_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[str] = []
    built: Any = object()

    def build(settings: object) -> Any:
        steps.append("build")
        return built

    monkeypatch.setattr(celery_app, "_runtime", None)
    monkeypatch.setattr(celery_app.Runtime, "build", build)
    monkeypatch.setattr(celery_app, "settle_heap", lambda: steps.append("settle"))
    assert celery_app.runtime() is built
    assert celery_app.runtime() is built
    assert steps == ["build", "settle"]
