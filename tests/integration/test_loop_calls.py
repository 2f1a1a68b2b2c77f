"""Script calls of concurrent callers on one event loop go to Redis in one pipeline, and
each caller gets its own call's answer or error."""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio
from redis.exceptions import NoScriptError, ResponseError

from reengage.adapters.redis.loop_calls import LoopCalls, loop_calls
from tests.conftest import REDIS_URL

ECHO = "redis.call('INCR', KEYS[1]) return ARGV[1]"
FAIL = "return redis.error_reply('refused ' .. ARGV[1])"


class CountingClient(redis.asyncio.Redis):
    """Counts the round trips: direct commands and pipelines."""

    trips = 0
    gate: asyncio.Event | None = None  # a call of "slow" waits for it before it is sent

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.trips += 1
        if "slow" in args and self.gate is not None:
            await self.gate.wait()
        return await super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        self.trips += 1
        return super().pipeline(transaction, shard_hint)


def test_concurrent_calls_share_one_round_trip_and_get_their_own_answers(
    redis_client: redis.Redis,
) -> None:
    echo = redis_client.script_load(ECHO)
    fail = redis_client.script_load(FAIL)

    async def scenario() -> list[Any]:
        client = CountingClient.from_url(REDIS_URL, decode_responses=True)
        calls = LoopCalls(client)
        try:
            first = await calls.evalsha(echo, 1, "n", "alone")  # nobody else: sent at once
            assert (first, client.trips) == ("alone", 1)
            client.trips = 0
            out = await asyncio.gather(
                *(calls.evalsha(echo, 1, "n", f"a{i}") for i in range(3)),
                calls.evalsha(fail, 0, "x"),
                calls.evalsha("0" * 40, 0),
                return_exceptions=True,
            )
            assert client.trips == 1  # the five calls of one turn of the loop: one pipeline
            client.trips, client.gate = 0, asyncio.Event()
            slow = asyncio.ensure_future(calls.evalsha(echo, 1, "n", "slow"))
            while client.trips == 0:  # until it is under way: the next call does not wait
                await asyncio.sleep(0)
            assert await asyncio.wait_for(calls.evalsha(echo, 1, "n", "next"), 5) == "next"
            client.gate.set()
            assert (await slow, client.trips) == ("slow", 2)
            return out
        finally:
            await client.aclose()

    out = asyncio.run(scenario())
    assert out[:3] == ["a0", "a1", "a2"]
    assert isinstance(out[3], ResponseError)
    assert "refused x" in str(out[3])
    assert isinstance(out[4], NoScriptError)
    assert redis_client.get("n") == "6"  # each script ran once


def test_a_failed_pipeline_fails_each_of_its_callers_and_the_next_calls_go_on(
    redis_client: redis.Redis,
) -> None:
    echo = redis_client.script_load(ECHO)

    class Flaky(CountingClient):
        fail_next = False

        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
            if self.fail_next:
                self.fail_next = False
                raise redis.exceptions.ConnectionError("gone")
            return super().pipeline(transaction, shard_hint)

    async def scenario() -> tuple[list[Any], Any]:
        client = Flaky.from_url(REDIS_URL, decode_responses=True)
        calls = LoopCalls(client)
        try:
            blocker = asyncio.ensure_future(calls.evalsha(echo, 1, "n", "first"))
            await asyncio.sleep(0)  # the first call is sent alone; the next two go together
            client.fail_next = True
            out = await asyncio.gather(
                calls.evalsha(echo, 1, "n", "b"),
                calls.evalsha(echo, 1, "n", "c"),
                return_exceptions=True,
            )
            assert await blocker == "first"
            return out, await calls.evalsha(echo, 1, "n", "after")
        finally:
            await client.aclose()

    out, after = asyncio.run(scenario())
    assert all(isinstance(o, redis.exceptions.ConnectionError) for o in out)
    assert after == "after"
    assert redis_client.get("n") == "2"  # the failed pipeline ran nothing


def test_only_a_plain_client_has_batched_calls() -> None:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    assert loop_calls(client) is loop_calls(client) is not None
    assert loop_calls(object()) is None  # type: ignore[arg-type]
