"""Event subscriptions through the API: managed, refused precisely, kept to their
organization; a receiver that never answers fails its events after 24 h and its
subscription is disabled; a delivery is re-sent by hand."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import EventSubscription, OutboundEvent
from reengage.runtime import Runtime
from reengage.testing.time_travel import TimeTravel
from tests.conftest import TEST_SECRET_KEY
from tests.e2e.conftest import Tenant
from tests.factories import make_org

SUBS = "/v1/event-subscriptions"


def closed_port_url() -> str:
    """A local URL nothing listens on: every attempt is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def listed(t: Tenant, path: str) -> list[Any]:
    r: Any = t.get(path)
    assert r.status_code == 200, r.text
    return list(r.json())


def create(t: Tenant, body: dict[str, Any]) -> Any:
    return t.post(SUBS, body)


def test_a_subscription_is_created_listed_changed_and_deleted(
    runtime: Runtime, tenant: Callable[[str], Tenant]
) -> None:
    t = tenant("acme")
    r: Any = create(t, {"url": "https://example.com/h", "event_types": ["conversation.*"]})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["secret"].startswith("whsec_")
    assert (made["enabled"], made["event_types"]) == (True, ["conversation.*"])
    listed: Any = t.get(SUBS)
    assert [s["id"] for s in listed.json()] == [made["id"]]
    assert "secret" not in listed.json()[0]
    with runtime.sessions() as session:  # stored encrypted, like bot credentials
        stored = session.scalars(select(EventSubscription.secret)).one()
    assert made["secret"].encode() not in stored
    assert made["secret"][6:].encode() not in stored
    changed = t.client.patch(
        f"{SUBS}/{made['id']}",
        json={"event_types": ["*"], "enabled": False},
        headers=t.headers,
    )
    assert changed.json()["event_types"] == ["*"]
    assert changed.json()["disabled_reason"] == "by_operator"
    assert t.client.delete(f"{SUBS}/{made['id']}", headers=t.headers).status_code == 204
    gone: Any = t.get(f"{SUBS}/{made['id']}")
    assert (gone.status_code, gone.json()["field"]) == (404, "subscription_id")


def test_bad_subscriptions_are_refused_precisely_and_write_nothing(
    tenant: Callable[[str], Tenant],
) -> None:
    t = tenant("acme")
    cases = [
        ({"url": "ftp://example.com", "event_types": ["*"]}, "url"),
        ({"url": "/relative", "event_types": ["*"]}, "url"),
        ({"url": "https://example.com", "event_types": ["conversation.handedoff"]}, None),
        ({"url": "https://example.com", "event_types": []}, None),
        ({"url": "https://example.com", "event_types": ["*"], "extra": 1}, None),
    ]
    for body, field in cases:
        r: Any = create(t, body)
        assert r.status_code == 422, (body, r.text)
        assert "\n" not in r.json()["message"]
        if field:
            assert r.json()["field"] == field
    unknown: Any = create(t, {"url": "https://e.com", "event_types": ["conversation.handedoff"]})
    assert unknown.json()["message"] == "unknown event type 'conversation.handedoff'"
    assert unknown.json()["field"] == "event_types"
    listed: Any = t.get(SUBS)
    assert listed.json() == []


def test_another_organizations_subscription_is_not_found(
    tenant: Callable[[str], Tenant],
) -> None:
    a, b = tenant("a"), tenant("b")
    made: Any = create(a, {"url": "https://example.com/h", "event_types": ["*"]})
    sub_id = made.json()["id"]
    for r in (
        b.get(f"{SUBS}/{sub_id}"),
        b.get(f"{SUBS}/{sub_id}/deliveries"),
        b.post(f"{SUBS}/{sub_id}/rotate-secret", None),
        b.client.delete(f"{SUBS}/{sub_id}", headers=b.headers),
    ):
        assert r.status_code == 404  # type: ignore[attr-defined]


def test_a_receiver_that_never_answers_fails_its_event_after_24_hours_and_is_disabled(
    runtime: Runtime, tenant: Callable[[str], Tenant], clock: ManualClock
) -> None:
    t = tenant("acme")
    made: Any = create(t, {"url": closed_port_url(), "event_types": ["contact.opted_out"]})
    sub_id = made.json()["id"]
    contact = f"/v1/bots/{t.bot_id}/contacts/55"
    assert t.client.patch(contact, json={"opted_out": True}, headers=t.headers).is_success
    # Not wanted: an opt-in is not recorded for this subscription at all.
    assert t.client.patch(contact, json={"opted_out": False}, headers=t.headers).is_success
    with runtime.sessions() as session:
        assert session.scalars(select(OutboundEvent.type)).all() == ["contact.opted_out"]
    travel = TimeTravel(runtime, clock)
    travel.wait(timedelta(hours=23, minutes=59))
    [pending] = listed(t, f"{SUBS}/{sub_id}/deliveries")
    assert pending["status"] == "pending"
    assert pending["webhook_id"] == f"evt_{pending['event_id']}"
    travel.wait(timedelta(minutes=2))
    [failed] = listed(t, f"{SUBS}/{sub_id}/deliveries")
    assert failed["status"] == "failed"
    attempts: Any = t.get(f"/v1/event-deliveries/{failed['id']}/attempts")
    waits = [a["at"] for a in attempts.json()]
    assert len(waits) == failed["attempts"] > 20
    assert all(a["status_code"] is None for a in attempts.json())
    sub: Any = t.get(f"{SUBS}/{sub_id}")
    assert (sub.json()["enabled"], sub.json()["disabled_reason"]) == (False, "failing")
    # Disabled: a re-send is refused until the operator enables it again.
    resend: Any = t.post(f"/v1/event-deliveries/{failed['id']}/resend", None)
    assert (resend.status_code, resend.json()["field"]) == (422, "delivery_id")
    t.client.patch(f"{SUBS}/{sub_id}", json={"enabled": True}, headers=t.headers)
    resend = t.post(f"/v1/event-deliveries/{failed['id']}/resend", None)
    assert resend.status_code == 202
    assert resend.json()["status"] == "pending"
    travel.drain()
    after: Any = t.get(f"/v1/event-deliveries/{failed['id']}/attempts")
    assert len(after.json()) == len(waits) + 1


def test_the_cli_subscribes_lists_rotates_disables_and_refuses_precisely(
    runtime: Runtime, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from reengage.entrypoints.cli import app

    org = make_org(runtime)
    monkeypatch.setenv("REENGAGE_DATABASE_URL", db_url)
    monkeypatch.setenv("REENGAGE_SECRET_KEY", TEST_SECRET_KEY)
    cli = CliRunner()
    made = cli.invoke(
        app,
        ["events", "subscribe", str(org.org_id), "https://example.com/h", "--type", "contact.*"],
    )
    assert made.exit_code == 0, made.output
    assert "subscription 1 https://example.com/h contact.* enabled" in made.output
    secret = made.output.split("secret ")[1].strip()
    assert secret.startswith("whsec_")
    rotated = cli.invoke(app, ["events", "rotate-secret", str(org.org_id), "1"])
    assert rotated.exit_code == 0, rotated.output
    assert secret not in rotated.output
    off = cli.invoke(app, ["events", "enable", str(org.org_id), "1", "--off"])
    assert "disabled (by_operator)" in off.output
    listed = cli.invoke(app, ["events", "list", str(org.org_id)])
    assert (
        listed.output.strip()
        == "subscription 1 https://example.com/h contact.* disabled (by_operator)"
    )
    bad = cli.invoke(app, ["events", "subscribe", str(org.org_id), "https://e.com", "--type", "x"])
    assert bad.exit_code == 1
    assert bad.output.strip() == "reengage: error: unknown event type 'x'"
    other = cli.invoke(app, ["events", "resend", str(org.org_id), "99"])
    assert (other.exit_code, other.output.strip()) == (
        1,
        "reengage: error: event delivery 99 not found",
    )
