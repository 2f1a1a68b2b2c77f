"""The manager bot end to end: an invited admin builds a campaign from Telegram, and an end
user of the managed bot then receives exactly those blocks at those times."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from reengage.runtime import Runtime
from tests.e2e.harness import MODES, runtime_in_mode
from tests.e2e.shop import Shop
from tests.manager_console import Console

ADMIN = 5_550_001
PNG = b"\x89PNG\r\n\x1a\n" + b"\x03" * 512


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return runtime_in_mode(request, tmp_path)


def invite(shop: Shop) -> str:
    body = shop.call("post", "/v1/admin-invites")
    assert body["start_command"] == f"/start {body['code']}"
    return str(body["code"])


def test_an_invited_admin_builds_a_campaign_that_reaches_a_quiet_user(
    shop: Shop, console: Console
) -> None:
    console.send(ADMIN, f"/start {invite(shop)}")
    assert console.messages(ADMIN)[0].text == "Bem-vindo! Você agora administra Acme."
    assert console.screen(ADMIN) == "O que deseja configurar?"
    assert list(console.buttons(ADMIN)) == [
        "🔁 Recuperação",
        "⏱ Tempos de inatividade",
        "🌐 English",
    ]
    console.press(ADMIN, "🔁 Recuperação")
    assert console.screen(ADMIN) == "Escolha um bot:"
    console.press(ADMIN, "🤖 Loja")
    assert "Ignorar pagantes: sim" in console.screen(ADMIN)  # on by default
    console.press(ADMIN, "🪜 Passos")
    assert console.screen(ADMIN) == "Nenhum passo ainda."

    # Step 1: 30 minutes after, a text block shown after 5 s of typing.
    console.press(ADMIN, "➕ Passo")
    console.send(ADMIN, "30m")
    assert console.screen(ADMIN) == "🪜 Passos da campanha:\n1. 30 minutos depois · 0 🧱"
    console.press(ADMIN, "1. 30 minutos depois")
    console.press(ADMIN, "➕ Bloco")
    console.send(ADMIN, "Ei, esqueceu algo no carrinho?")
    assert console.screen(ADMIN).endswith("1. texto: Ei, esqueceu algo no carrinho?")
    console.press(ADMIN, "1. texto: Ei, esqueceu algo no carrinho?")
    console.press(ADMIN, "⌛ Atraso")
    console.send(ADMIN, "5s")
    assert "Atraso: 5s" in console.screen(ADMIN)
    console.press(ADMIN, "⬅ Voltar")
    console.press(ADMIN, "⬅ Voltar")

    # Step 2: a photo the admin sends, deleted an hour after it is sent.
    console.press(ADMIN, "➕ Passo")
    console.send(ADMIN, "2h")
    console.press(ADMIN, "2. 2 horas depois")
    console.press(ADMIN, "➕ Bloco")
    console.send_photo(ADMIN, PNG, caption="10% off só hoje")
    assert console.screen(ADMIN).endswith("1. foto: 10% off só hoje")
    console.press(ADMIN, "1. foto: 10% off só hoje")
    console.press(ADMIN, "🧹 Apagar após")
    console.send(ADMIN, "30s")
    assert console.screen(ADMIN) == "A exclusão automática precisa de pelo menos 1 minuto: 30s"
    console.send(ADMIN, "1h")
    assert "Apagar após: 1h" in console.screen(ADMIN)
    console.press(ADMIN, "⬅ Voltar")

    # The schedule of step 2, with a typo first: a clear message, nothing changed.
    console.press(ADMIN, "🗓 Agenda")
    console.send(ADMIN, "amanhã 25:00")
    assert console.screen(ADMIN) == "Horário inválido: 25:00"
    console.send(ADMIN, "tomorrow 09:00")
    assert console.screen(ADMIN).startswith("Passo 2: amanhã às 09:00")
    console.press(ADMIN, "⬅ Voltar")
    console.press(ADMIN, "⬅ Voltar")

    # Preview for a user inactive since now (09:00 in São Paulo), then publish and enable.
    console.press(ADMIN, "👁 Prévia")
    assert console.screen(ADMIN).splitlines() == [
        "👁 Prévia para um usuário inativo desde agora:",
        "1. 05/01/2026 09:40 (America/Sao_Paulo) — 30 minutos depois",
        "   • texto: Ei, esqueceu algo no carrinho? ⌛5s",
        "2. 06/01/2026 09:00 (America/Sao_Paulo) — amanhã às 09:00",
        "   • foto: 10% off só hoje 🧹60min",
    ]
    console.press(ADMIN, "⬅ Voltar")
    console.press(ADMIN, "🚀 Publicar")
    assert console.answers()[-1]["text"] == "Publicada: versão 1"
    console.press(ADMIN, "▶ Ativar")
    assert "Ativa: sim · versão publicada: 1" in console.screen(ADMIN)

    # Every button press was answered once, and every button fits Telegram's 64 bytes.
    assert console.presses == 23
    assert len(console.answers()) == console.presses
    assert max(len(d.encode()) for d in console.all_callback_data()) <= 64

    # An end user of the managed bot goes quiet at 09:00 São Paulo.
    shop.event("101")
    shop.wait(timedelta(minutes=40))
    assert shop.heard("101") == []
    shop.wait(timedelta(seconds=10))
    assert shop.heard("101") == ["Ei, esqueceu algo no carrinho?"]
    shop.wait(timedelta(hours=23, minutes=19))  # to 11:59:10 UTC: not yet
    assert shop.heard("101") == ["Ei, esqueceu algo no carrinho?"]
    shop.wait(timedelta(minutes=1))  # 2026-01-06 12:00 UTC = 09:00 in São Paulo
    assert shop.heard("101") == ["Ei, esqueceu algo no carrinho?", "10% off só hoje"]
    [photo] = shop.fake.calls_to("sendPhoto")
    assert photo.files["photo"] == PNG  # the admin's bytes, uploaded by the managed bot
    shop.wait(timedelta(hours=1, minutes=1))
    assert [m.caption for m in shop.fake.sent_messages(101) if m.deleted] == ["10% off só hoje"]
    sent = {
        d["dedup_key"].split(":", 2)[2]: (datetime.fromisoformat(d["sent_at"]), d["status"])
        for d in shop.call("get", "/v1/deliveries", None)
    }
    assert sorted(sent) == ["0:0", "1:0"]
    assert {status for _, status in sent.values()} == {"sent"}
    # On time, give or take the 1 s per-chat pacing (Redis keeps it on real time, which the
    # test's manual clock outruns).
    for key, due in {"0:0": "2026-01-05T12:40:05Z", "1:0": "2026-01-06T12:00:00Z"}.items():
        lateness = sent[key][0] - datetime.fromisoformat(due)
        assert timedelta(0) <= lateness <= timedelta(seconds=2), (key, lateness)


def test_timeouts_menu_views_and_changes_a_bots_default(shop: Shop, console: Console) -> None:
    console.send(ADMIN, f"/start {invite(shop)}")
    console.press(ADMIN, "⏱ Tempos de inatividade")
    console.press(ADMIN, "🤖 Loja")
    assert console.screen(ADMIN) == (
        "⏱ Inatividade — Loja\nAtivo: não (herdado)\nTempo limite: 1h (herdado)\n"
        "Ação final: nenhuma (herdado)"
    )
    console.press(ADMIN, "⏳ Tempo limite")
    console.send(ADMIN, "45s")
    assert console.screen(ADMIN) == "O tempo limite deve ficar entre 1 minuto e 30 dias: 45s"
    console.send(ADMIN, "30m")
    console.press(ADMIN, "Ação: encerrar")
    console.press(ADMIN, "▶ Ativar")
    assert console.screen(ADMIN) == (
        "⏱ Inatividade — Loja\nAtivo: sim\nTempo limite: 30m\nAção final: encerrar"
    )
    policy = shop.call("get", f"/v1/bots/{shop.bot}/policy")["settings"]
    assert (policy["enabled"], policy["timeout"], policy["action"]) == (True, "30m", "close")
    assert len(console.answers()) == console.presses


def test_exclusions_window_and_language(shop: Shop, console: Console) -> None:
    console.send(ADMIN, f"/start {invite(shop)}")
    console.press(ADMIN, "🌐 English")
    assert console.screen(ADMIN) == "What would you like to set up?"
    console.press(ADMIN, "🔁 Recovery")
    console.press(ADMIN, "🤖 Loja")
    console.press(ADMIN, "🕗 Window")
    console.send(ADMIN, "21:00-08:00")
    assert console.screen(ADMIN) == "Invalid send window: 21:00-08:00"
    console.send(ADMIN, "08:00-21:00")
    assert "Send window: 08:00-21:00" in console.screen(ADMIN)
    console.press(ADMIN, "🚫 Exclusions")
    console.press(ADMIN, "➕ Exclude a user")
    console.send(ADMIN, "424242")
    assert console.screen(ADMIN) == "🚫 Excluded users: 1"
    assert shop.call("get", f"/v1/bots/{shop.bot}/campaign")["exclusions"] == ["424242"]
    console.press(ADMIN, "❌ 424242")
    assert console.screen(ADMIN) == "🚫 Excluded users: 0"
    console.press(ADMIN, "⬅ Back")
    console.press(ADMIN, "▶ Enable")
    assert console.answers()[-1]["text"] == "Publish the campaign first."
    assert shop.call("get", f"/v1/bots/{shop.bot}/campaign")["enabled"] is False
