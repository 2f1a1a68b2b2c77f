"""Script calls of concurrent requests on an event loop, sent to Redis in one pipeline.

Each hot-path request (an event, a webhook) makes one `EVALSHA` of the record script. One at
a time, redis-py takes a connection from its pool (with a read that checks it holds no stale
reply), writes the command and parses its answer: per call, that costs about as much of the
API process's CPU as the rest of the request's recording. The calls made in one turn of the
event loop (under load, those of every request whose bytes came in together) go at the next
turn in one pipeline, with no wait behind one already under way: one connection check, one
write and one read for all of them. Each caller still gets its own call's answer (or its error)
once Redis answered, so nothing is acknowledged sooner than before. The script calls are
independent (no MULTI): Redis runs each atomically, as it would have run them one by one.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio
from redis.exceptions import ResponseError

MAX_PIPELINE = 256  # calls per pipeline: a bounded write and read per round trip


@dataclass(slots=True)
class _Queue:
    pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class LoopCalls:
    """Commands (`evalsha`, `call`) of callers on the event loops of one plain (not cluster)
    asyncio client."""

    def __init__(self, client: redis.asyncio.Redis, *, max_pipeline: int = MAX_PIPELINE) -> None:
        self._client = client
        self._max = max_pipeline
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = (
            weakref.WeakKeyDictionary()
        )

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        """The script's answer, as `client.evalsha` gives it (a `ResponseError` such as
        `NoScriptError` raised to this caller alone)."""
        return await self.call("EVALSHA", sha, numkeys, *keys_and_args)

    async def call(self, *command: Any) -> Any:
        """Any command's answer, as `client.execute_command` gives it."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        answer: asyncio.Future[Any] = loop.create_future()
        queue.pending.append((command, answer))
        if queue.task is None:
            queue.task = loop.create_task(self._drain(queue))
        return await answer

    async def _drain(self, queue: _Queue) -> None:
        """Send what the callers of the last turn of the loop asked; those that ask meanwhile
        go in the next pipeline at once, not behind this one."""
        batch, queue.pending = queue.pending[: self._max], queue.pending[self._max :]
        queue.task = None
        if queue.pending:
            queue.task = asyncio.get_running_loop().create_task(self._drain(queue))
        try:
            answers = await self._send([command for command, _ in batch])
        except Exception as exc:  # the pipeline failed: each of its callers is told
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        except BaseException:
            for _, answer in batch:
                answer.cancel()
            raise
        for (_, answer), out in zip(batch, answers, strict=True):
            if answer.done():  # its caller went away
                continue
            if isinstance(out, ResponseError):
                answer.set_exception(out)
            else:
                answer.set_result(out)

    async def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        if len(commands) == 1:  # no pipeline's bookkeeping for a lone call
            try:
                return [await self._client.execute_command(*commands[0])]  # type: ignore[no-untyped-call]
            except ResponseError as exc:
                return [exc]
        pipe = self._client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        answers: list[Any] = await pipe.execute(raise_on_error=False)
        return answers


_CALLS: weakref.WeakKeyDictionary[redis.asyncio.Redis, LoopCalls] = weakref.WeakKeyDictionary()


def loop_calls(client: redis.asyncio.Redis) -> LoopCalls | None:
    """The batched calls of a plain asyncio client (one per client); None for a cluster
    client, whose calls go one by one to the node of their slot."""
    if not isinstance(client, redis.asyncio.Redis):
        return None
    calls = _CALLS.get(client)
    if calls is None:
        calls = _CALLS[client] = LoopCalls(client)
    return calls
