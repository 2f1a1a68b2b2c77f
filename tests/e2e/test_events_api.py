"""`POST /v1/events` and the conversation endpoints, end to end over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import ActivityRecord, Contact, Conversation
from reengage.runtime import Runtime
from reengage.timers.executors import InlineExecutor
from reengage.timers.scheduler import Scheduler
from tests.e2e.conftest import Tenant

TenantFactory = Callable[[str], Tenant]


def rows(runtime: Runtime) -> tuple[int, ...]:
    with runtime.sessions() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m)) or 0
            for m in (ActivityRecord, Contact, Conversation)
        )


def event(bot_id: int, n: int, **overrides: Any) -> dict[str, Any]:
    return {"id": f"e{n}", "type": "message.user", "bot_id": bot_id, "user_id": "42", **overrides}


def test_requests_without_a_valid_key_are_refused(client: TestClient, runtime: Runtime) -> None:
    assert client.post("/v1/events", json={}).status_code == 401
    r = client.get("/v1/bots", headers={"Authorization": "Bearer rg_nope"})
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"


def test_single_event_then_a_retried_batch(
    tenant: TenantFactory, runtime: Runtime, clock: ManualClock
) -> None:
    t = tenant("A")
    r = t.post("/v1/events", event(t.bot_id, 1))
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 1, "duplicates": 0}
    r = t.post("/v1/events", {"events": [event(t.bot_id, 1), event(t.bot_id, 2)]})
    assert r.json() == {"accepted": 1, "duplicates": 1}
    [conv] = t.get("/v1/conversations", user_id="42").json()
    assert conv["activity_seq"] == 2
    assert conv["status"] == "bot"
    detail = t.get(f"/v1/conversations/{conv['id']}").json()
    assert detail["pending_timer"]["purpose"] == "inactivity"
    due = detail["pending_timer"]["due_at"].replace("Z", "+00:00")
    assert due == (clock.now() + timedelta(minutes=10)).isoformat()


def test_a_bad_event_is_named_and_nothing_is_applied(
    tenant: TenantFactory, runtime: Runtime
) -> None:
    t = tenant("A")
    cases = [
        (
            {"events": [event(t.bot_id, 1), event(t.bot_id, 2, type="message.sms")]},
            "events[1].type",
        ),
        ({"events": [event(t.bot_id, 1), event(t.bot_id, 2, user_id="")]}, "events[1].user_id"),
        (
            {"events": [event(t.bot_id, 1), event(t.bot_id, 2, occurred_at="2026-01-01T10:00:00")]},
            "events[1].occurred_at",
        ),
        (
            {
                "events": [
                    event(t.bot_id, 1),
                    event(t.bot_id, 2, occurred_at="2999-01-01T10:00:00Z"),
                ]
            },
            "events[1].occurred_at",
        ),
        (
            {"events": [event(t.bot_id, 1), event(t.bot_id, 2, type="conversation.status")]},
            "events[1]",
        ),
        ({"events": [event(t.bot_id, 1), event(t.bot_id + 999, 2)]}, "events[1].bot_id"),
        ({"events": []}, "events"),
        ({"events": [event(t.bot_id, 1, colour="red")]}, "events[0].colour"),
        (event(0, 1), "bot_id"),
    ]
    for body, field in cases:
        r = t.post("/v1/events", body)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["field"] == field, r.json()
        assert r.json()["message"]
    assert rows(runtime) == (0, 0, 0)


def test_malformed_json_is_a_clear_4xx(client: TestClient, tenant: TenantFactory) -> None:
    t = tenant("A")
    r = client.post(
        "/v1/events",
        content=b"{not json",
        headers={**t.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_input"


def test_an_organization_cannot_touch_another_ones_data(
    tenant: TenantFactory, runtime: Runtime
) -> None:
    a, b = tenant("A"), tenant("B")
    assert b.post("/v1/events", event(b.bot_id, 1)).status_code == 200
    [conv_b] = b.get("/v1/conversations").json()
    # A cannot read B's bot, conversation, or event log...
    assert a.get(f"/v1/bots/{b.bot_id}").status_code == 404
    assert a.get(f"/v1/conversations/{conv_b['id']}").status_code == 404
    assert a.get(f"/v1/conversations/{conv_b['id']}/events").status_code == 404
    assert a.get("/v1/conversations").json() == []
    assert [bot["id"] for bot in a.get("/v1/bots").json()] == [a.bot_id]
    # ...nor write activity to B's bot.
    r = a.post("/v1/events", event(b.bot_id, 2))
    assert (r.status_code, r.json()["field"]) == (422, "bot_id")
    assert rows(runtime) == (1, 1, 1)
    # The same client event id in two organizations is two different events.
    assert a.post("/v1/events", event(a.bot_id, 1)).json()["accepted"] == 1


def test_bots_keep_credentials_out_of_responses(tenant: TenantFactory, runtime: Runtime) -> None:
    t = tenant("A")
    r = t.post(
        "/v1/bots",
        {
            "name": "Sales",
            "channel": "telegram",
            "credentials": {"token": "123:SECRET"},
            "inactivity_threshold_seconds": 300,
        },
    )
    assert r.status_code == 201, r.text
    assert "SECRET" not in r.text
    assert r.json()["has_credentials"] is True
    from reengage.adapters.db.models import Bot

    with runtime.sessions() as s:
        stored = s.get(Bot, r.json()["id"])
    assert stored is not None
    assert stored.credentials is not None
    assert b"SECRET" not in stored.credentials
    bad = t.post(
        "/v1/bots", {"name": "x", "channel": "telegram", "inactivity_threshold_seconds": 5}
    )
    assert (bad.status_code, bad.json()["field"]) == (422, "body")
    bad = t.post("/v1/bots", {"name": "x", "channel": "fax"})
    assert (bad.status_code, bad.json()["field"]) == (422, "channel")
    bad = t.post("/v1/bots", {"name": "x", "channel": "simulator", "paid_broadcast": True})
    assert bad.status_code == 422
    assert "paid_broadcast is a Telegram feature" in bad.text
    paying = {"name": "x", "channel": "telegram", "credentials": {"token": "1:X"}}
    made = t.post("/v1/bots", {**paying, "paid_broadcast": True})
    assert (made.status_code, made.json()["paid_broadcast"]) == (201, True)


def test_a_quiet_conversation_is_logged_once_by_the_scheduler(
    tenant: TenantFactory, runtime: Runtime, clock: ManualClock
) -> None:
    t = tenant("A")
    t.post("/v1/events", event(t.bot_id, 1))
    scheduler = Scheduler(
        sessions=runtime.sessions,
        store=runtime.timers,
        executor=InlineExecutor(runtime),
        registry=runtime.registry,
        clock=clock,
    )
    clock.advance(timedelta(minutes=10))
    assert scheduler.run_once() == 1
    [conv] = t.get("/v1/conversations").json()
    log = t.get(f"/v1/conversations/{conv['id']}/events").json()
    assert [e["kind"] for e in log] == ["inactivity_detected"]
    assert conv["inactivity_due_at"] is None
    assert t.get(f"/v1/conversations/{conv['id']}").json()["pending_timer"] is None


def test_health_and_metrics(client: TestClient, tenant: TenantFactory) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"database": "ok", "timers": "ok"}
    t = tenant("A")
    t.post("/v1/events", event(t.bot_id, 1))
    assert 'reengage_events_recorded_total{outcome="accepted"}' in client.get("/metrics").text
    assert client.get("/openapi.json").json()["paths"]["/v1/events"]["post"]
