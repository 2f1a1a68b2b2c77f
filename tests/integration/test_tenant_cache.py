"""API keys and bots from memory: a revoked key or a changed bot takes effect at the next
request in every API process; a change made behind reengage's back within `max_age`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import redis
import redis.asyncio
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.inbound import inbound_timer
from reengage.adapters.db.models import ApiKey, Bot, InboundMessage
from reengage.adapters.redis.activity_store import RedisActivityStore
from reengage.domain.activity import (
    ActivityEvent,
    ConversationStatus,
    EventType,
    Inbound,
    RecordResult,
)
from reengage.domain.inactivity import inactivity_key
from reengage.entrypoints.api.app import create_app
from reengage.runtime import Runtime
from reengage.services.record_activity import record_on_loop
from reengage.services.tenancy import revoke_api_key
from reengage.services.tenant_cache import TenantCache
from tests.conftest import REDIS_URL, HotRedis
from tests.factories import make_bot, make_org, message


@contextmanager
def _poster(runtime: Runtime, key: str, bot: int) -> Iterator[Callable[[str], int]]:
    """POST one event per call, through the app as served (its lifespan: the loop's client)."""
    with TestClient(create_app(runtime)) as client:

        def post(event_id: str) -> int:
            body = {"id": event_id, "type": "message.user", "bot_id": bot, "user_id": "u"}
            r = client.post("/v1/events", json=body, headers={"Authorization": f"Bearer {key}"})
            return r.status_code

        yield post


def _statements(runtime: Runtime) -> list[str]:
    seen: list[str] = []
    event.listen(runtime.engine, "before_cursor_execute", lambda *a: seen.append(str(a[2])))
    return seen


def test_a_known_key_and_bot_cost_no_database_round_trip(
    pg_db: str, make_runtime: Callable[..., Runtime], redis_client: redis.Redis
) -> None:
    api = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(api)
    bot = make_bot(api, org.org_id)
    assert api.activity.restore(api.clock.now())
    with _poster(api, org.api_key, bot) as post:
        assert post("e1") == 200
        seen = _statements(api)
        assert [post(f"e{i}") for i in range(2, 6)] == [200] * 4
        assert seen == []


def test_a_key_revoked_in_another_process_is_refused_at_the_next_request(
    pg_db: str, make_runtime: Callable[..., Runtime], redis_client: redis.Redis
) -> None:
    api = make_runtime(pg_db, redis_url=REDIS_URL)
    admin = make_runtime(pg_db, redis_url=REDIS_URL)  # another process: the CLI, say
    org = make_org(api)
    bot = make_bot(api, org.org_id)
    with _poster(api, org.api_key, bot) as post:
        assert post("e1") == 200
        assert post("e2") == 200  # from memory now
        with admin.sessions() as s:
            key_id = s.scalars(select(ApiKey.id).where(ApiKey.org_id == org.org_id)).one()
        revoke_api_key(admin.sessions, org.org_id, key_id, admin.clock.now())
        assert post("e3") == 401
        assert api.activity.hot_seq(bot, "u") == 2  # nothing of the refused request applied


def test_a_revoked_key_is_refused_when_its_request_reads_a_new_bot(
    pg_db: str, make_runtime: Callable[..., Runtime], redis_client: redis.Redis
) -> None:
    """The batch names a bot created since the key was cached: the bots are read anew, and
    the key is checked again under the same stamp, not trusted from before."""
    api = make_runtime(pg_db, redis_url=REDIS_URL)
    admin = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(api)
    bot = make_bot(api, org.org_id)
    headers = {"Authorization": f"Bearer {org.api_key}"}
    with TestClient(create_app(api)) as client:

        def post(bot_id: int, event_id: str) -> int:
            body = {"id": event_id, "type": "message.user", "bot_id": bot_id, "user_id": "u"}
            return client.post("/v1/events", json=body, headers=headers).status_code

        assert post(bot, "e1") == 200
        assert post(bot, "e2") == 200  # the key and the bot from memory now
        new_bot = make_bot(admin, org.org_id)
        with admin.sessions() as s:
            key_id = s.scalars(select(ApiKey.id).where(ApiKey.org_id == org.org_id)).one()
        revoke_api_key(admin.sessions, org.org_id, key_id, admin.clock.now())
        assert post(new_bot, "e3") == 401
        assert api.activity.hot_seq(new_bot, "u") is None  # nothing applied


def test_a_bot_changed_in_another_process_applies_at_the_next_request(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    clock: ManualClock,
    hot_redis: HotRedis,
) -> None:
    api = make_runtime(pg_db, **hot_redis.settings)
    admin = make_runtime(pg_db, **hot_redis.settings)
    org = make_org(api)
    bot = make_bot(api, org.org_id)
    with _poster(api, org.api_key, bot) as post:
        assert post("e1") == 200
        with admin.sessions.begin() as s:
            s.get_one(Bot, bot).inactivity_threshold_s = 3600
        assert post("e2") == 200
        timer = api.timers.get(inactivity_key(bot, "u"))
        assert timer is not None
        assert timer.due_at == clock.now() + timedelta(hours=1)


def test_a_key_revoked_by_hand_is_refused_within_max_age(
    pg_db: str, make_runtime: Callable[..., Runtime], redis_client: redis.Redis
) -> None:
    api = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(api)
    bot = make_bot(api, org.org_id)
    now = [0.0]
    assert isinstance(api.tenants, TenantCache)
    api.tenants = TenantCache(
        api.sessions,
        api.tenants._stamps,
        timedelta(minutes=10),
        max_age=timedelta(seconds=60),
        tick=lambda: now[0],
    )
    with _poster(api, org.api_key, bot) as post:
        assert post("e1") == 200
        with api.engine.begin() as conn:  # SQL by hand: no stamp is bumped
            conn.execute(update(ApiKey).values(revoked_at=api.clock.now()))
        now[0] = 59.0
        assert post("e2") == 200
        now[0] = 60.0
        assert post("e3") == 401


def test_without_redis_nothing_is_cached(pg_db: str, make_runtime: Callable[..., Runtime]) -> None:
    api = make_runtime(pg_db)
    org = make_org(api)
    bot = make_bot(api, org.org_id)
    with _poster(api, org.api_key, bot) as post:
        assert post("e1") == 200
        with api.engine.begin() as conn:
            conn.execute(update(ApiKey).values(revoked_at=api.clock.now()))
        assert post("e2") == 401


def test_the_event_loop_records_a_known_subject_in_one_script_call(
    pg_db: str, make_runtime: Callable[..., Runtime], redis_client: redis.Redis
) -> None:
    api = make_runtime(pg_db, redis_url=REDIS_URL)
    org = make_org(api)
    bot = make_bot(api, org.org_id)
    api.record(org.org_id, [message(bot, "u", api.clock.now())])  # known subject, cached bot
    store = api.activity
    assert isinstance(store, RedisActivityStore)

    async def on_loop(events: list[ActivityEvent]) -> RecordResult | None:
        client = redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True)
        try:
            return await record_on_loop(
                api.tenants, store, client, org.org_id, events, api.clock.now()
            )
        finally:
            await client.aclose()

    assert asyncio.run(on_loop([message(bot, "u", api.clock.now())])) == RecordResult(1, 0)
    assert api.activity.hot_seq(bot, "u") == 2
    # What a message says is stored once its activity is accepted, and its timer is set.
    said = message(bot, "u", api.clock.now(), inbound=Inbound("oi"))
    assert asyncio.run(on_loop([said])) == RecordResult(1, 0)
    assert api.activity.hot_seq(bot, "u") == 3
    with api.sessions() as s:
        assert s.scalars(select(InboundMessage.text)).all() == ["oi"]
    assert api.timers.get(inbound_timer(bot, "u", api.clock.now()).key) is not None
    # A status change needs the database first: handed back with nothing applied.
    closed = message(bot, "u", api.clock.now(), type=EventType.CONVERSATION_STATUS,
                     status=ConversationStatus.CLOSED)  # fmt: skip
    assert asyncio.run(on_loop([closed])) is None
    with api.sessions.begin() as s:
        s.get_one(Bot, bot).inactivity_threshold_s = 60  # the cached stamp is stale now
    assert asyncio.run(on_loop([message(bot, "u", api.clock.now())])) is None
    assert api.activity.hot_seq(bot, "u") == 3
