"""Group commit: writes of concurrent callers in one transaction.

Each caller still returns only once its own write is committed (nothing is acknowledged
before it is durable), but callers that arrive while a transaction is under way share the
next one: under load, one commit serves many requests instead of one each.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


@dataclass(slots=True)
class _Waiting(Generic[T]):
    item: T
    done: bool = False
    error: BaseException | None = None


class GroupCommit(Generic[T]):
    """`write(session, items)` for many callers' items at once.

    The first caller to find no transaction under way leads: it takes its own item and those
    waiting at that moment (at most `max_batch` in all), writes and commits them, and wakes
    their callers; callers that arrived meanwhile elect the next leader. A batch that fails
    is written again item by item, so a bad item fails its own caller only.

    `submit` is the same write for a caller that has other work to do meanwhile: a thread of
    the group commit's own writes what was submitted, one transaction after another, each
    with everything submitted while the one before was under way.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        write: Callable[[Session, Sequence[T]], None],
        *,
        max_batch: int = 256,
    ) -> None:
        self._sessions = sessions
        self._write = write
        self._max = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Waiting[T]] = []
        self._busy = False
        self._submitted: list[tuple[T, Future[None]]] = []
        self._draining = False

    @property
    def waiting(self) -> int:
        """Callers waiting for a transaction to begin."""
        with self._cond:
            return len(self._queue)

    def __call__(self, item: T) -> None:
        mine = _Waiting(item)
        with self._cond:
            self._queue.append(mine)
            while not mine.done and self._busy:
                self._cond.wait()
            if mine.done:
                if mine.error is not None:
                    raise mine.error
                return
            self._busy = True
            self._queue.remove(mine)
            others, self._queue = self._queue[: self._max - 1], self._queue[self._max - 1 :]
            batch = [mine, *others]
        try:
            self._commit(batch)
        finally:
            with self._cond:
                for waiting in batch:
                    if not waiting.done:  # the leader was interrupted: nothing is known
                        waiting.error = waiting.error or RuntimeError("write interrupted")
                        waiting.done = True
                self._busy = False
                self._cond.notify_all()
        if mine.error is not None:
            raise mine.error

    def submit(self, item: T) -> Future[None]:
        """Write `item` without waiting for it: the future ends once it is committed, or
        with its error."""
        later: Future[None] = Future()
        with self._cond:
            self._submitted.append((item, later))
            if self._draining:
                return later
            self._draining = True
        threading.Thread(target=self._drain, name="group-commit", daemon=True).start()
        return later

    def _drain(self) -> None:
        batch: list[tuple[T, Future[None]]] = []
        try:
            while True:
                with self._cond:
                    batch = self._submitted[: self._max]
                    del self._submitted[: self._max]
                    if not batch:
                        self._draining = False
                        return
                errors = commit_each(self._sessions, self._write, [item for item, _ in batch])
                for (_, later), error in zip(batch, errors, strict=True):
                    if error is None:
                        later.set_result(None)
                    else:
                        later.set_exception(error)
        except BaseException as exc:  # nothing of this batch is known committed
            with self._cond:
                self._draining = False
                stranded, self._submitted = self._submitted, []
            for _, later in [*batch, *stranded]:
                if not later.done():
                    later.set_exception(exc)
            raise

    def _commit(self, batch: list[_Waiting[T]]) -> None:
        errors = commit_each(self._sessions, self._write, [w.item for w in batch])
        for waiting, error in zip(batch, errors, strict=True):
            waiting.error = error
            waiting.done = True


class LoopGroupCommit(Generic[T]):
    """`GroupCommit` for callers on an event loop: they await their item's commit while one
    thread writes, in one transaction, what gathered during the previous one; `after` runs
    in that thread with the committed items (an error there fails their callers).

    `on_loop`, when given, commits the batch on the event loop instead (no thread hop): it
    returns each item's error, or None once that item is committed (and its `after` done)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        write: Callable[[Session, Sequence[T]], None],
        after: Callable[[Sequence[T]], None] | None = None,
        *,
        max_batch: int = 256,
        on_loop: Callable[[list[T]], Awaitable[list[Exception | None]]] | None = None,
    ) -> None:
        self._sessions = sessions
        self._write = write
        self._after = after
        self._max = max_batch
        self._on_loop = on_loop
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue[T]] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, item: T) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _LoopQueue()
        done: asyncio.Future[None] = loop.create_future()
        queue.pending.append((item, done))
        if queue.task is None:
            queue.task = loop.create_task(self._drain(queue))
        await done

    async def _drain(self, queue: _LoopQueue[T]) -> None:
        try:
            while queue.pending:
                batch, queue.pending = queue.pending[: self._max], queue.pending[self._max :]
                try:
                    items = [item for item, _ in batch]
                    if self._on_loop is not None:
                        try:
                            errors = await self._on_loop(items)
                        except Exception as exc:  # nothing is known committed: all fail
                            errors = [exc] * len(items)
                    else:
                        errors = await asyncio.to_thread(self._commit, items)
                except BaseException:
                    for _, done in batch:
                        done.cancel()
                    raise
                for (_, done), error in zip(batch, errors, strict=True):
                    if done.done():
                        continue
                    if error is None:
                        done.set_result(None)
                    else:
                        done.set_exception(error)
        finally:
            queue.task = None

    def _commit(self, items: list[T]) -> list[Exception | None]:
        errors = commit_each(self._sessions, self._write, items)
        committed = [item for item, error in zip(items, errors, strict=True) if error is None]
        if committed and self._after is not None:
            try:
                self._after(committed)
            except Exception as exc:
                errors = [error or exc for error in errors]
        return errors


@dataclass(slots=True)
class _LoopQueue(Generic[T]):
    pending: list[tuple[T, asyncio.Future[None]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


def commit_each(
    sessions: sessionmaker[Session],
    write: Callable[[Session, Sequence[T]], None],
    items: Sequence[T],
) -> list[Exception | None]:
    """Write `items` in one transaction; when that fails, each in one of its own, so that a
    bad item fails alone. Each item's error, or None once it is committed."""
    try:
        with sessions.begin() as session:
            write(session, items)
        return [None] * len(items)
    except Exception as exc:
        if len(items) == 1:
            return [exc]
    errors: list[Exception | None] = []
    for item in items:
        try:
            with sessions.begin() as session:
                write(session, [item])
            errors.append(None)
        except Exception as exc:
            errors.append(exc)
    return errors
