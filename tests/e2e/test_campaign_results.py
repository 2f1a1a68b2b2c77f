"""A campaign's results end to end: a scripted population on the manual clock (treatment and
holdout, returns before and after the last step, payments, opt-outs, a block, WhatsApp
receipts), every number of `GET /campaign/results` and the same numbers on the manager bot."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reengage.domain import results as res
from reengage.runtime import Runtime
from reengage.testing.whatsapp import FakeWhatsApp
from tests.channel_harness import WA_PHONE
from tests.e2e.harness import MODES, runtime_in_mode
from tests.e2e.shop import START, Shop, WhatsAppShop
from tests.manager_console import Console

ADMIN = 5_550_001
USERS = [str(3000 + n) for n in range(90)]
CAMPAIGN = {
    "time_zone": "America/Sao_Paulo",
    "threshold": "10m",
    "holdout_percent": 50,
    "reentry_cooldown": "30d",  # one episode per user in this story
    "conversion_window": "3d",  # the return window stays at its default, 24 h
    "steps": [
        {"schedule": "30m", "blocks": [{"kind": "text", "text": "Esqueceu algo?"}]},
        {"schedule": "2h", "blocks": [{"kind": "text", "text": "Última chance!"}]},
    ],
}


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return runtime_in_mode(request, tmp_path)


def results(shop: Shop, **params: Any) -> dict[str, Any]:
    r = shop.client.get(
        f"/v1/bots/{shop.bot}/campaign/results", params=params, headers=shop.headers
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def arms(shop: Shop) -> tuple[list[str], list[str]]:
    """The users of each arm (the draw is the engine's), listed through the paged episodes."""
    holdout: dict[int, bool] = {}
    cursor = None
    while True:
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        r = shop.client.get(
            f"/v1/bots/{shop.bot}/campaign/results/episodes", params=params, headers=shop.headers
        )
        page = r.json()
        holdout |= {e["contact_id"]: e["holdout"] for e in page["items"]}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    users = {shop.call("get", f"/v1/bots/{shop.bot}/contacts/{u}")["id"]: u for u in USERS}
    assert sorted(holdout) == sorted(users)  # one episode per user, all listed once
    treated = sorted(users[c] for c, held in holdout.items() if not held)
    held_out = sorted(users[c] for c, held in holdout.items() if held)
    return treated, held_out


def step_arm(**counts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "reached": 0,
        "sent": 0,
        "delivered": 0,
        "read": None,
        "failed": 0,
        "pending": 0,
        "skipped": [],
        "returned": 0,
        "converted": 0,
        "opted_out": 0,
        "blocked": 0,
    }
    return base | counts


def lift(s1: int, n1: int, s2: int, n2: int) -> dict[str, Any]:
    d, low, high = res.newcombe(s1, n1, s2, n2)
    return {
        "enough_data": True,
        "treatment_rate": pytest.approx(s1 / n1),
        "holdout_rate": pytest.approx(s2 / n2),
        "difference": pytest.approx(d),
        "ci_low": pytest.approx(low),
        "ci_high": pytest.approx(high),
        "confidence": 0.95,
        "method": "newcombe_hybrid_score",
    }


def pct(value: float, signed: bool = False) -> str:
    return (f"{value * 100:+.1f}" if signed else f"{value * 100:.1f}%").replace(".", ",")


def test_the_funnel_and_the_lift_of_a_scripted_population(shop: Shop, console: Console) -> None:
    shop.launch(CAMPAIGN)
    for user in USERS:
        shop.event(user)
    shop.wait(timedelta(minutes=41))  # episodes at +10m, step 1 at +40m
    t, h = arms(shop)
    n_t, n_h = len(t), len(h)
    assert min(n_t, n_h) >= 30  # enough for a lift (the draw is stable per contact)

    shop.wait(timedelta(minutes=19))  # +1h: back between the steps; an opt-out; a block
    for user in [*t[0:6], *h[0:2]]:
        shop.event(user)
    shop.says(t[19], "parar")
    shop.fake.block(int(t[21]))
    shop.wait(timedelta(minutes=30))  # +1h30: two of those who came back pay
    for user in t[4:6]:
        shop.event(user, "payment.confirmed")
    shop.wait(timedelta(hours=2, minutes=30))  # +4h: the last step went out at +2h40m
    shop.says(t[20], "parar")  # an opt-out after the last step, within its 24 h
    shop.wait(timedelta(hours=1))  # +5h: back after the last step, within 24 h of it
    for user in [*t[6:14], *h[2:5]]:
        shop.event(user)
    shop.wait(timedelta(hours=25))  # +30h: back, but past the 24 h after the last step
    shop.event(t[18])
    shop.wait(timedelta(hours=18))  # +2d: payments within 3 days of the last step
    for user in [*t[14:17], h[5]]:
        shop.event(user, "payment.confirmed")
    shop.wait(timedelta(days=2))  # +4d: a payment past the conversion window
    shop.event(t[17], "payment.confirmed")
    shop.wait(timedelta(days=1))

    assert results(shop) == {
        "bot_id": shop.bot,
        "from": None,
        "to": None,
        "version": None,
        "receipts": False,
        "versions": [
            {
                "version": 1,
                "return_window": "1d",
                "conversion_window": "3d",
                "treatment": {
                    "started": n_t,
                    "returned": 14,
                    "converted": 5,
                    "opted_out": 2,
                    "blocked": 1,
                },
                "holdout": {
                    "started": n_h,
                    "returned": 5,
                    "converted": 1,
                    "opted_out": 0,
                    "blocked": 0,
                },
                "steps": [
                    {
                        "step": 0,
                        "treatment": step_arm(
                            reached=n_t,
                            sent=n_t,
                            delivered=n_t,
                            returned=6,
                            converted=2,
                            opted_out=1,
                        ),
                        "holdout": step_arm(
                            reached=n_h,
                            skipped=[{"reason": "holdout", "count": n_h}],
                            returned=2,
                        ),
                    },
                    {
                        "step": 1,
                        "treatment": step_arm(
                            reached=n_t - 7,  # 6 came back, 1 opted out before it
                            sent=n_t - 8,
                            delivered=n_t - 8,
                            failed=1,  # the blocked contact's
                            returned=8,
                            converted=3,
                            opted_out=1,
                            blocked=1,
                        ),
                        "holdout": step_arm(
                            reached=n_h - 2,
                            skipped=[{"reason": "holdout", "count": n_h - 2}],
                            returned=3,
                            converted=1,
                        ),
                    },
                ],
                "return_lift": lift(14, n_t, 5, n_h),
                "conversion_lift": lift(5, n_t, 1, n_h),
            }
        ],
    }

    # The same numbers, in words, on the manager bot.
    code = shop.call("post", "/v1/admin-invites")["code"]
    console.send(ADMIN, f"/start {code}")
    console.press(ADMIN, "🔁 Recuperação")
    console.press(ADMIN, "🤖 Loja")
    console.press(ADMIN, "📊 Resultados")
    d_ret, lo_ret, hi_ret = res.newcombe(14, n_t, 5, n_h)
    d_conv, lo_conv, hi_conv = res.newcombe(5, n_t, 1, n_h)
    assert console.screen(ADMIN).split("\n") == [
        "📊 Resultados — Loja",
        "",
        "Versão 1 · retorno em 1d, conversão em 3d",
        f"Iniciados: {n_t} com a campanha, {n_h} no controle",
        f"Passo 1: enviados {n_t} · entregues {n_t} · voltaram 6 · pagaram 2 · saíram 1 · "
        "bloquearam 0 · falharam 0 · pulados 0",
        f"Passo 2: enviados {n_t - 8} · entregues {n_t - 8} · voltaram 8 · pagaram 3 · "
        "saíram 1 · bloquearam 1 · falharam 1 · pulados 0",
        "Controle: voltaram 5 · pagaram 1",
        f"Retorno: {pct(14 / n_t)} com a campanha \u00d7 {pct(5 / n_h)} no controle: "
        f"{pct(d_ret, True)} pontos (IC 95%: {pct(lo_ret, True)} a {pct(hi_ret, True)})",
        f"Conversão: {pct(5 / n_t)} com a campanha \u00d7 {pct(1 / n_h)} no controle: "
        f"{pct(d_conv, True)} pontos (IC 95%: {pct(lo_conv, True)} a {pct(hi_conv, True)})",
    ]


def test_a_one_step_campaign_credits_returns_after_it_and_whatsapp_receipts(
    wa_shop: WhatsAppShop, console: Console
) -> None:
    shop = wa_shop
    shop.launch(
        {
            "threshold": "10m",
            "reentry_cooldown": "30d",
            "steps": [{"schedule": "30m", "blocks": [{"kind": "text", "text": "Oi"}]}],
        }
    )
    users = ["5511900000001", "5511900000002", "5511900000003"]
    for user in users:
        shop.says(user, "olá")
    shop.wait(timedelta(minutes=41))
    sent = {m.to: m.id for m in shop.fake.sent_messages()}
    assert sorted(sent) == users
    ts = int(shop.clock.now().timestamp())
    for user, status in ((users[0], "delivered"), (users[1], "read")):
        payload = FakeWhatsApp.status_payload(WA_PHONE, sent[user], status, user, ts)
        shop.post_raw(payload)
    shop.wait(timedelta(hours=3))
    shop.says(users[1], "voltei")  # after the only (last) step: a return of that step
    shop.wait(timedelta(hours=1))
    [version] = results(shop)["versions"]
    assert version["treatment"] == {
        "started": 3,
        "returned": 1,
        "converted": 0,
        "opted_out": 0,
        "blocked": 0,
    }
    assert version["steps"] == [
        {
            "step": 0,
            "treatment": step_arm(reached=3, sent=3, delivered=2, read=1, returned=1),
            "holdout": step_arm(read=0),
        }
    ]
    not_enough = {
        "enough_data": False,
        "treatment_rate": pytest.approx(1 / 3),
        "holdout_rate": 0.0,
        "difference": None,
        "ci_low": None,
        "ci_high": None,
        "confidence": 0.95,
        "method": "newcombe_hybrid_score",
    }
    assert version["return_lift"] == not_enough

    # In English on the manager bot: reads where the channel tells, and no lift yet.
    code = shop.call("post", "/v1/admin-invites")["code"]
    console.send(ADMIN, f"/start {code}")
    console.press(ADMIN, "🌐 English")
    console.press(ADMIN, "🔁 Recovery")
    console.press(ADMIN, "🤖 Loja")
    console.press(ADMIN, "📊 Results")
    minimum = "not enough data (minimum: 30 episodes in each group and 5 successes in all)"
    assert console.screen(ADMIN).split("\n") == [
        "📊 Results — Loja",
        "",
        "Version 1 · return within 1d, conversion within 7d",
        "Started: 3 with the campaign, 0 in the holdout",
        "Step 1: sent 3 · delivered 2 · read 1 · returned 1 · paid 0 · opted out 0 · "
        "blocked 0 · failed 0 · skipped 0",
        f"Return: 33.3% with the campaign vs 0.0% in the holdout — {minimum}",
        f"Conversion: 0.0% with the campaign vs 0.0% in the holdout — {minimum}",
    ]


def test_filters_paging_and_csv(shop: Shop) -> None:
    shop.launch({**CAMPAIGN, "holdout_percent": 0})
    shop.event("4001")
    shop.wait(timedelta(hours=1))
    changed = {**CAMPAIGN, "holdout_percent": 0, "return_window": "2h"}
    shop.call("put", f"/v1/bots/{shop.bot}/campaign", changed)
    shop.call("post", f"/v1/bots/{shop.bot}/campaign/publish")
    shop.event("4002")
    shop.event("4003")
    shop.wait(timedelta(days=1))
    both = results(shop)["versions"]
    assert [(v["version"], v["treatment"]["started"], v["return_window"]) for v in both] == [
        (1, 1, "1d"),
        (2, 2, "2h"),
    ]
    [v2] = results(shop, version=2)["versions"]
    assert v2["version"] == 2
    later = (START + timedelta(minutes=30)).isoformat()
    assert [v["version"] for v in results(shop, **{"from": later})["versions"]] == [2]
    assert results(shop, to=later)["versions"][0]["treatment"]["started"] == 1
    assert results(shop, to=START.isoformat())["versions"] == []
    # The alias of the former counts answers the same numbers.
    assert shop.call("get", f"/v1/bots/{shop.bot}/campaign/stats") == results(shop)

    base = f"/v1/bots/{shop.bot}/campaign/results"
    for path, params, field in [
        (base, {"from": later, "to": START.isoformat()}, "to"),
        (base, {"from": later, "to": later}, "to"),
        (base, {"from": "2026-01-05T12:00:00"}, "from"),  # no offset
        (base, {"version": 0}, "version"),
        (f"{base}/episodes", {"cursor": "not-a-cursor"}, "cursor"),
        (f"{base}/deliveries", {"limit": 0}, "limit"),
        (f"{base}/episodes.csv", {"from": later, "to": START.isoformat()}, "to"),
    ]:
        r = shop.client.get(path, params=params, headers=shop.headers)
        assert r.status_code == 422, (path, params, r.text)
        assert field in r.text
    assert shop.client.get(base, headers={"Authorization": "Bearer nope"}).status_code == 401
    r = shop.client.get("/v1/bots/999999/campaign/results", headers=shop.headers)
    assert r.status_code == 404

    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = shop.client.get(f"{base}/deliveries", params=params, headers=shop.headers).json()
        pages.append([d["id"] for d in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [i for p in pages for i in p]
    assert len(ids) == 6  # 3 episodes x 2 steps
    assert ids == sorted(set(ids))  # each once, in order
    assert all(len(p) <= 2 for p in pages)

    r = shop.client.get(f"{base}/deliveries.csv", params={"version": 2}, headers=shop.headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 4
    assert {(row["step"], row["status"]) for row in rows} == {("0", "sent"), ("1", "sent")}
    r = shop.client.get(f"{base}/episodes.csv", headers=shop.headers)
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["status"] for row in rows] == ["completed"] * 3
    assert (rows[0]["last_step"], rows[0]["returned_at"]) == ("1", "")
