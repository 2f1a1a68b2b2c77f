"""WhatsApp runs flows, keywords and recovery like Telegram: users write through Meta-shaped,
signed webhooks on the real endpoint; the bot answers through the WhatsApp Cloud API fake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reengage.runtime import Runtime
from tests.conftest import settle
from tests.e2e.harness import MODES, runtime_in_mode
from tests.e2e.shop import WhatsAppShop

SALES = {
    "nodes": [
        {"id": "hello", "type": "message", "text": "Olá! Sou o bot da loja.", "next": "plan"},
        {
            "id": "plan",
            "type": "question",
            "text": "Qual plano você quer? (mensal/anual)",
            "var": "plan",
            "choices": ["mensal", "anual"],
            "next": "email",
        },
        {
            "id": "email",
            "type": "question",
            "text": "Qual seu e-mail?",
            "var": "email",
            "next": "done",
        },
        {"id": "done", "type": "close", "text": "Obrigado, {email}!"},
    ]
}
SAO_PAULO_USER = "5511987654321"
MANAUS_USER = "5592981234567"  # +55 92: Amazonas, one hour behind São Paulo


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return runtime_in_mode(request, tmp_path)


def test_a_question_answered_over_whatsapp_advances_the_flow(wa_shop: WhatsAppShop) -> None:
    shop, user = wa_shop, SAO_PAULO_USER
    shop.flow("sales", SALES, entry=True)
    shop.says(user, "oi")
    shop.wait(timedelta(seconds=2))
    assert shop.heard(user) == ["Olá! Sou o bot da loja.", "Qual plano você quer? (mensal/anual)"]
    shop.taps(user, "Anual")  # an interactive reply button: its title answers
    shop.wait(timedelta(seconds=2))
    assert shop.heard(user)[-1] == "Qual seu e-mail?"
    # a photo whose caption is the answer
    image = {"id": "media-1", "mime_type": "image/jpeg", "caption": "maria@exemplo.com"}
    shop.post(user, {"type": "image", "image": image})
    shop.wait(timedelta(seconds=2))
    assert shop.heard(user)[-1] == "Obrigado, maria@exemplo.com!"
    [conv] = shop.call("get", "/v1/conversations")
    assert conv["status"] == "closed"
    assert conv["context_variables"] == {"plan": "anual", "email": "maria@exemplo.com"}
    contact = shop.call("get", f"/v1/bots/{shop.bot}/contacts/{user}")
    assert (contact["name"], contact["time_zone"]) == ("Maria Silva", "America/Sao_Paulo")


POLICY = {
    "enabled": True,
    "timeout": "10m",
    "action": "close",
    "final_text": "Encerrando por falta de resposta.",
    "reminders": [{"after": "3m", "text": "Ainda está aí?"}],
}
RECOVERY = {
    "time_zone": "America/Sao_Paulo",
    "threshold": "5m",
    "steps": [
        {"schedule": "30m", "blocks": [{"kind": "text", "text": "Ei, esqueceu algo?"}]},
        {"schedule": "2h", "blocks": [{"kind": "text", "text": "Última chance!"}]},
    ],
}


def test_parar_over_whatsapp_stops_everything_proactive(wa_shop: WhatsAppShop) -> None:
    shop, user = wa_shop, SAO_PAULO_USER
    shop.flow("sales", SALES, entry=True)
    shop.call("put", f"/v1/bots/{shop.bot}/flows/sales/nodes/plan/policy", POLICY)
    shop.launch(RECOVERY)
    shop.says(user, "oi")
    shop.wait(timedelta(minutes=46))
    # the timeout speaks first; recovery waits for the close (10 m), then its threshold (5 m)
    assert shop.heard(user)[2:] == [
        "Ainda está aí?",
        "Encerrando por falta de resposta.",
        "Ei, esqueceu algo?",
    ]
    shop.says(user, "Parar")
    shop.wait(timedelta(days=3))
    assert shop.heard(user)[5:] == [
        "Pronto, você não receberá mais mensagens automáticas. "
        "Para voltar a recebê-las, envie VOLTAR A RECEBER."
    ]
    assert [(e["status"], e["end_reason"]) for e in shop.episodes()] == [("stopped", "opted_out")]
    assert shop.call("get", f"/v1/bots/{shop.bot}/contacts/{user}")["opted_out_at"] is not None
    # back in: proactive messages resume (a new silence, a new episode)
    shop.says(user, "voltar a receber")
    shop.wait(timedelta(minutes=40))
    assert shop.heard(user)[6:] == [
        "Pronto, você voltará a receber nossas mensagens.",
        "Ei, esqueceu algo?",
    ]


def test_parar_silences_the_timeout_of_the_question_it_answered(wa_shop: WhatsAppShop) -> None:
    shop, user = wa_shop, SAO_PAULO_USER
    shop.flow("sales", SALES, entry=True)
    shop.call("put", f"/v1/bots/{shop.bot}/flows/sales/nodes/plan/policy", POLICY)
    shop.says(user, "oi")
    shop.wait(timedelta(seconds=2))
    shop.says(user, "PARAR")  # a keyword: not an answer, the flow does not move
    shop.wait(timedelta(hours=1))
    assert shop.heard(user)[2:] == [
        "Pronto, você não receberá mais mensagens automáticas. "
        "Para voltar a recebê-las, envie VOLTAR A RECEBER."
    ]
    # the stages still ran (the conversation is closed), silently, and the log says why
    stages = [k for k in shop.log(user) if k != "inactivity_detected"]
    assert stages == ["reminder_skipped", "closed_by_timeout"]
    [conv] = shop.call("get", "/v1/conversations")
    events = shop.call("get", f"/v1/conversations/{conv['id']}/events")
    assert [e["reason"] for e in events if e["kind"] == "reminder_skipped"] == ["opted_out"]
    statuses = {
        (d["purpose"], d["status"], d["reason"]) for d in shop.call("get", "/v1/deliveries")
    }
    assert ("timeout", "skipped", "opted_out") in statuses


TEMPLATE_CAMPAIGN: dict[str, Any] = {
    "time_zone": "America/Sao_Paulo",
    "threshold": "10m",
    "steps": [
        {"schedule": "30m", "blocks": [{"kind": "text", "text": "Ei, esqueceu algo?"}]},
        {
            "schedule": "+2d 10:00",
            "blocks": [
                {
                    "kind": "template",
                    "template": {
                        "name": "volte_sempre",
                        "language": "pt_BR",
                        "parameters": ["{name|cliente}"],
                    },
                },
                {"kind": "text", "text": "Texto fora da janela"},
            ],
        },
    ],
}


def test_a_template_block_reaches_the_user_two_days_later(wa_shop: WhatsAppShop) -> None:
    shop, user = wa_shop, MANAUS_USER
    draft = shop.call("put", f"/v1/bots/{shop.bot}/campaign", TEMPLATE_CAMPAIGN)
    # at edit time: the text block of step 2 can only fall outside the 24-hour window
    assert len(draft["warnings"]) == 1
    assert "A etapa 2" in draft["warnings"][0]
    preview = shop.call("post", f"/v1/bots/{shop.bot}/campaign/preview", {})
    assert [p["warning"] is not None for p in preview] == [False, True]
    shop.launch(TEMPLATE_CAMPAIGN)
    shop.says(user, "quero ver os preços")
    shop.wait(timedelta(days=3))
    assert shop.heard(user) == ["Ei, esqueceu algo?", "[volte_sempre: Maria Silva]"]
    rows = sorted(shop.call("get", "/v1/deliveries"), key=lambda d: d["id"])
    assert [(r["status"], r["reason"]) for r in rows] == [
        ("sent", None),
        ("sent", None),
        ("skipped", "window_closed"),
    ]
    # 10:00 in Manaus (the zone of the number: +55 92), two days after step 1
    assert datetime.fromisoformat(rows[1]["sent_at"]) == datetime(2026, 1, 7, 14, 0, tzinfo=UTC)
    [sent] = [c for c in shop.fake.calls_to("messages") if c.body.get("type") == "template"]
    assert sent.body["template"]["language"] == {"code": "pt_BR"}


def test_template_blocks_are_refused_on_telegram(shop: Any) -> None:
    r = shop.client.put(
        f"/v1/bots/{shop.bot}/campaign", json=TEMPLATE_CAMPAIGN, headers=shop.headers
    )
    assert r.status_code == 422
    assert r.json()["field"] == "steps[1].blocks[0].kind"


def test_a_message_is_dated_by_its_own_timestamp(wa_shop: WhatsAppShop) -> None:
    """Meta delivers webhooks late and retries them for days: the activity, the 24-hour
    window and the silence count from when the user wrote."""
    shop, user = wa_shop, SAO_PAULO_USER
    shop.launch(RECOVERY)
    written = shop.clock.now()
    shop.clock.advance(timedelta(hours=2))  # the webhook arrives two hours late
    shop.post(user, {"type": "text", "text": {"body": "oi"}, "timestamp": unix(written)})
    settle(shop.runtime)  # the write-behind, in production mode
    [conv] = shop.call("get", "/v1/conversations")
    assert datetime.fromisoformat(conv["last_activity_at"]) == written
    assert datetime.fromisoformat(conv["window_expires_at"]) == written + timedelta(hours=24)
    shop.wait(timedelta(minutes=1))  # 5 m threshold + 30 m step: long due
    assert shop.heard(user) == ["Ei, esqueceu algo?"]
    # an even older message, retried late: the user did not come back
    older = written - timedelta(minutes=5)
    reaction = {"message_id": "wamid.x", "emoji": "👍"}
    shop.post(user, {"type": "reaction", "reaction": reaction, "timestamp": unix(older)})
    shop.wait(timedelta(hours=3))
    assert shop.heard(user) == ["Ei, esqueceu algo?", "Última chance!"]
    assert [e["status"] for e in shop.episodes()] == ["completed"]


def unix(when: datetime) -> str:
    return str(int(when.timestamp()))
