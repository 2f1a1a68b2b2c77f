"""Hot activity written behind to the database by threads of a scheduler's own, as fast as
the database takes it, beside the scheduler's claiming instead of inside it.

Each thread takes a batch of dirty subjects (atomically: no two threads or schedulers take
the same subject), writes it in one transaction and settles it, and goes again at once while
there was something to write; with nothing waiting it sleeps `interval`. While one thread's
batch is in PostgreSQL the next is read from Redis and prepared, so the database, Redis and
Python work side by side. A failed round (the database or Redis away) leaves its subjects in
flight, taken again once stuck (`RedisActivityStore`), and backs off like the scheduler.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from reengage import metrics
from reengage.adapters.outage import Backoff, Outage
from reengage.ports import ActivityStore, Clock

# After a failed round (real seconds): as the scheduler's.
BACKOFF_FIRST = 0.1
BACKOFF_CAP = 5.0


class WriteBehind:
    def __init__(
        self, activity: ActivityStore, clock: Clock, *, threads: int, interval: timedelta
    ) -> None:
        if threads < 1:
            raise ValueError("write-behind needs at least one thread")
        self.activity = activity
        self.clock = clock
        self.threads = threads
        self.interval = interval
        # One outage for all the threads: one line when the stores go, one when they are back.
        self._outage = Outage("write_behind", Backoff(BACKOFF_FIRST, BACKOFF_CAP))
        self._outage_lock = threading.Lock()

    def flush_once(self) -> int:
        """One batch written; how many subjects."""
        flushed = self.activity.flush(self.clock.now())
        if flushed:
            metrics.WRITE_BEHIND_FLUSHED.inc(flushed)
        return flushed

    def drain(self) -> int:
        """Write everything waiting now, with every thread; how many subjects."""
        with ThreadPoolExecutor(self.threads, thread_name_prefix="write-behind") as pool:
            return sum(pool.map(lambda _: self._until_empty(), range(self.threads)))

    def _until_empty(self) -> int:
        written = 0
        while flushed := self.flush_once():
            written += flushed
        return written

    def start(self, stop: threading.Event) -> list[threading.Thread]:
        """The threads, started; each runs until `stop` is set."""
        threads = [
            threading.Thread(target=self._run, args=(stop,), name=f"write-behind-{i}", daemon=True)
            for i in range(self.threads)
        ]
        for thread in threads:
            thread.start()
        return threads

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                flushed = self.flush_once()
            except Exception as exc:
                with self._outage_lock:
                    wait = self._outage.failed(exc)
                stop.wait(wait)
                continue
            with self._outage_lock:
                self._outage.succeeded()
            if not flushed:
                stop.wait(self.clock.real_seconds(self.interval))
