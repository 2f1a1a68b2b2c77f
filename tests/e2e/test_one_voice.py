"""One voice per contact: a conversation timeout and a recovery campaign never talk over one
another, an opt-out silences every proactive message, a minimum gap holds them apart, and
blocks, exclusions and a campaign switched off stop episodes at once."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from reengage.domain.policy import LEGACY_MESSAGE
from reengage.runtime import Runtime
from tests.conftest import metric
from tests.e2e.harness import MODES, runtime_in_mode
from tests.e2e.shop import START, Shop

SALES = {
    "nodes": [
        {"id": "hello", "type": "message", "text": "Olá! Sou o bot da loja.", "next": "plan"},
        {
            "id": "plan",
            "type": "question",
            "text": "Qual plano você quer? (mensal/anual)",
            "var": "plan",
            "choices": ["mensal", "anual"],
        },
    ]
}
RESCUE = {"nodes": [{"id": "r1", "type": "message", "text": "Vamos recomeçar?"}]}
POLICY = {
    "enabled": True,
    "timeout": "10m",
    "action": "close",
    "final_text": "Encerrando por falta de resposta.",
    "reminders": [{"after": "3m", "text": "Ainda está aí?"}],
}
QUICK_CAMPAIGN = {
    "time_zone": "America/Sao_Paulo",
    "threshold": "2m",
    "steps": [
        {"schedule": "1m", "blocks": [{"kind": "text", "text": "Ei, esqueceu algo?"}]},
        {"schedule": "1d", "blocks": [{"kind": "text", "text": "Última chance!"}]},
    ],
}


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return runtime_in_mode(request, tmp_path)


def sent_at(shop: Shop, purpose: str, user: str | None = None) -> list[timedelta]:
    """When the messages of a purpose went out (`reminder`, `timeout`, `recovery`), from the
    start of the test, by the delivery record."""
    contact = shop.call("get", f"/v1/bots/{shop.bot}/contacts/{user}")["id"] if user else None
    return sorted(
        datetime.fromisoformat(d["sent_at"]) - START
        for d in shop.call("get", "/v1/deliveries")
        if d["purpose"] == purpose and d["status"] == "sent" and contact in (None, d["contact_id"])
    )


def test_recovery_waits_for_the_timeout_and_counts_from_the_close(shop: Shop) -> None:
    """Alone, the campaign would speak at 3 min, with the reminder. Together: the reminder at
    3 min, the close at 10, and only then the campaign (threshold 2 min, step 1 min)."""
    shop.flow("sales", SALES, entry=True)
    shop.call("put", f"/v1/bots/{shop.bot}/flows/sales/nodes/plan/policy", POLICY)
    shop.launch(QUICK_CAMPAIGN)
    shop.says("300", "oi")
    shop.wait(timedelta(minutes=20))
    assert shop.heard("300") == [
        "Olá! Sou o bot da loja.",
        "Qual plano você quer? (mensal/anual)",
        "Ainda está aí?",
        "Encerrando por falta de resposta.",
        "Ei, esqueceu algo?",
    ]
    assert sent_at(shop, "reminder") == [timedelta(minutes=3)]
    assert sent_at(shop, "timeout") == [timedelta(minutes=10)]
    assert sent_at(shop, "recovery") == [timedelta(minutes=13)]
    [episode] = shop.episodes()
    assert episode["started_at"].startswith("2026-01-05T12:12:00")


def test_no_recovery_while_a_human_has_the_conversation(shop: Shop) -> None:
    """The shipped defaults do not overlap: the legacy question timeout hands off after an
    hour, and recovery waits until the agent closes, then counts its threshold from there."""
    shop.flow("sales", SALES, entry=True)
    shop.launch({**QUICK_CAMPAIGN, "threshold": "10m"})
    shop.says("301", "oi")
    shop.wait(timedelta(days=2))
    assert shop.heard("301")[2:] == [LEGACY_MESSAGE["pt-BR"]]
    assert shop.episodes() == []
    [conv] = shop.call("get", "/v1/conversations")
    assert conv["status"] == "handoff"
    shop.call("post", f"/v1/conversations/{conv['id']}/close")
    shop.wait(timedelta(minutes=9))
    assert shop.heard("301")[2:] == [LEGACY_MESSAGE["pt-BR"]]
    shop.wait(timedelta(minutes=2))
    assert shop.heard("301")[-1] == "Ei, esqueceu algo?"


def test_an_opt_out_silences_reminders_close_messages_and_fallback_flows(shop: Shop) -> None:
    shop.flow("sales", SALES, entry=True)
    shop.flow("rescue", RESCUE)
    fallback = {**POLICY, "action": "fallback_flow", "fallback_flow": "rescue"}
    shop.call("put", f"/v1/bots/{shop.bot}/flows/sales/nodes/plan/policy", fallback)
    shop.launch(QUICK_CAMPAIGN)
    shop.says("302", "oi")
    shop.says("302", "sair")
    shop.wait(timedelta(days=2))
    assert shop.heard("302") == [
        "Olá! Sou o bot da loja.",
        "Qual plano você quer? (mensal/anual)",
        "Done: you will not receive automatic messages any more. "
        "To receive them again, send START.",
    ]
    log = [k for k in shop.log("302") if k != "inactivity_detected"]
    assert log == ["reminder_skipped", "fallback_by_timeout", "fallback_skipped"]
    assert shop.episodes() == []
    # a reply to the contact's own message is still allowed
    shop.says("302", "talvez")
    shop.wait(timedelta(seconds=3))
    assert shop.heard("302")[3:] == ["Qual plano você quer? (mensal/anual)"]


def test_a_minimum_gap_holds_proactive_messages_apart(shop: Shop) -> None:
    shop.call("put", "/v1/voice", {"min_gap": "30m"})
    shop.flow("sales", SALES, entry=True)
    shop.call("put", f"/v1/bots/{shop.bot}/flows/sales/nodes/plan/policy", POLICY)
    shop.says("303", "oi")
    with capture_logs() as logs:
        shop.wait(timedelta(hours=1))
    assert shop.heard("303")[2:] == ["Ainda está aí?", "Encerrando por falta de resposta."]
    # the close happened at 10 min; its message waited for 30 min after the reminder
    assert sent_at(shop, "timeout") == [timedelta(minutes=33)]
    assert any(e["event"] == "delivery.held" for e in logs)
    settings = shop.call("get", f"/v1/bots/{shop.bot}/voice")
    assert settings["resolved"]["min_gap"] == "30m"


def test_a_blocked_contact_ends_the_episode_at_once(shop: Shop) -> None:
    shop.launch(
        {
            **QUICK_CAMPAIGN,
            "steps": [
                {"schedule": "1m", "blocks": [{"kind": "text", "text": "Oi"}]},
                {"schedule": "1d", "blocks": [{"kind": "text", "text": "Última chance!"}]},
            ],
        }
    )
    shop.event("304")
    shop.fake.block(304)
    shop.wait(timedelta(minutes=3, seconds=1))  # step 1 goes out: 403
    [episode] = shop.episodes()
    assert (episode["status"], episode["end_reason"]) == ("stopped", "blocked")
    assert episode["next_due_at"] is None
    assert shop.runtime.timers.get(f"recovery_step:{episode['id']}") is None
    shop.wait(timedelta(days=2))
    assert shop.heard("304") == []


def test_an_exclusion_stops_a_running_episode_before_its_next_step(shop: Shop) -> None:
    shop.launch(QUICK_CAMPAIGN)
    shop.event("305")
    shop.event("306")
    shop.wait(timedelta(minutes=4))
    assert shop.heard("305") == ["Ei, esqueceu algo?"]
    excluded = metric("reengage_episodes_ended_total", outcome="stopped", reason="excluded")
    shop.call("post", f"/v1/bots/{shop.bot}/campaign/exclusions", {"user_id": "305"})
    assert metric("reengage_episodes_ended_total", outcome="stopped", reason="excluded") == (
        excluded + 1
    )
    by_user = {e["contact_id"]: e for e in shop.episodes()}
    assert sorted((e["status"], e["end_reason"]) for e in by_user.values()) == [
        ("running", None),
        ("stopped", "excluded"),
    ]
    shop.wait(timedelta(days=2))
    assert shop.heard("305") == ["Ei, esqueceu algo?"]
    assert shop.heard("306") == ["Ei, esqueceu algo?", "Última chance!"]


def test_a_campaign_switched_off_stops_its_episodes_at_once(shop: Shop) -> None:
    shop.launch(QUICK_CAMPAIGN)
    shop.event("307")
    shop.wait(timedelta(minutes=4))
    off = metric("reengage_episodes_ended_total", outcome="stopped", reason="campaign_disabled")
    shop.call("put", f"/v1/bots/{shop.bot}/campaign/enabled", {"enabled": False})
    assert metric(
        "reengage_episodes_ended_total", outcome="stopped", reason="campaign_disabled"
    ) == (off + 1)
    [episode] = shop.episodes()
    assert (episode["status"], episode["end_reason"]) == ("stopped", "campaign_disabled")
    shop.wait(timedelta(days=2))
    assert shop.heard("307") == ["Ei, esqueceu algo?"]


def test_a_contact_zone_from_an_event_or_the_api_sets_their_hour(shop: Shop) -> None:
    campaign: dict[str, Any] = {
        **QUICK_CAMPAIGN,
        "steps": [{"schedule": "amanhã 09:00", "blocks": [{"kind": "text", "text": "Bom dia!"}]}],
    }
    shop.launch(campaign)
    event = {"id": "z1", "type": "message.user", "bot_id": shop.bot, "user_id": "308"}
    shop.call("post", "/v1/events", {**event, "time_zone": "America/Manaus"})
    shop.call("patch", f"/v1/bots/{shop.bot}/contacts/309", {"time_zone": "Europe/Lisbon"})
    shop.call("post", "/v1/events", {**event, "id": "z2", "user_id": "309"})
    shop.wait(timedelta(days=1, hours=6))
    # 09:00 the next day in Manaus (13:00 UTC) and in Lisbon (09:00 UTC)
    assert sent_at(shop, "recovery", "308") == [timedelta(hours=25)]
    assert sent_at(shop, "recovery", "309") == [timedelta(hours=21)]
    bad = shop.client.post(
        "/v1/events", json={**event, "id": "z3", "time_zone": "Mars/Olympus"}, headers=shop.headers
    )
    assert (bad.status_code, bad.json()["field"]) == (422, "time_zone")
