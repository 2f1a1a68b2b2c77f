"""Recovery campaigns end to end: HTTP API, the Telegram fake, a manual clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from reengage.runtime import Runtime
from tests.conftest import metric
from tests.e2e.harness import MODES, runtime_in_mode
from tests.e2e.shop import CAMPAIGN, Shop
from tests.factories import make_org


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return runtime_in_mode(request, tmp_path)


def step_funnel(shop: Shop) -> dict[int, tuple[int, int, int]]:
    """Per step of the treatment: (sent, returned, converted), from the campaign's results."""
    [version] = shop.call("get", f"/v1/bots/{shop.bot}/campaign/results")["versions"]
    return {
        s["step"]: (s["treatment"]["sent"], s["treatment"]["returned"], s["treatment"]["converted"])
        for s in version["steps"]
    }


def test_silence_starts_an_episode_whose_steps_arrive_on_schedule(shop: Shop) -> None:
    shop.launch()
    shop.event("101")
    shop.wait(timedelta(minutes=39))
    assert shop.heard("101") == []
    shop.wait(timedelta(minutes=2))  # threshold 10m + 30m, then the photo 5 s later
    assert shop.heard("101") == ["Ei, esqueceu algo no carrinho?", "10% off"]
    [photo] = [c for c in shop.fake.calls_to("sendPhoto")]
    assert photo.params["photo"] == "https://cdn.example.com/promo.png"
    shop.wait(timedelta(hours=23))  # to 11:41 UTC = 08:41 in São Paulo: not yet
    assert shop.heard("101")[-1] == "10% off"
    shop.wait(timedelta(hours=1))  # past 09:00 local of the next day
    assert shop.heard("101")[-1] == "Última chance!"
    [sent_2] = [c for c in shop.fake.calls if c.params.get("text") == "Última chance!"]
    assert sent_2.params["chat_id"] == 101
    [episode] = shop.episodes()
    assert (episode["status"], episode["end_reason"]) == ("completed", "completed")
    deliveries = shop.call("get", "/v1/deliveries", None)
    assert sorted(d["dedup_key"].split(":", 2)[2] for d in deliveries) == ["0:0", "0:1", "1:0"]
    assert {d["status"] for d in deliveries} == {"sent"}


def test_a_block_delay_shows_the_chat_action_until_the_block_is_sent(shop: Shop) -> None:
    step = {
        "schedule": "30m",
        "blocks": [
            {"kind": "text", "text": "Oi!"},
            {"kind": "text", "text": "Ainda por aí?", "delay": "6s"},
            {"kind": "photo", "url": "https://cdn.example.com/p.png", "delay": "13s"},
        ],
    }
    shop.launch({**CAMPAIGN, "steps": [step]})
    shop.event("120")
    shop.event("121")
    shop.wait(timedelta(minutes=40))
    shop.event("121")  # back before the step's second block
    shop.wait(timedelta(minutes=2))

    def seen(user: int) -> list[str]:
        out = []
        for call in shop.fake.calls:
            if call.params.get("chat_id") != user or call.method == "getMe":
                continue
            out.append(call.params.get("action") or call.params.get("text") or call.method)
        return out

    # Telegram shows an action for 5 s: it starts 1 s after the block before and is repeated
    # every 4 s until the block is due (6 s later: twice; 13 s later: three times).
    assert seen(120) == [
        "Oi!",
        *["typing"] * 2,
        "Ainda por aí?",
        *["upload_photo"] * 3,
        "sendPhoto",
    ]
    # 121 answered right after the first block: no "typing…" for a block that will not come.
    assert seen(121) == ["Oi!"]


def test_step_2_waits_for_09_00_local_next_day(shop: Shop) -> None:
    shop.launch()
    shop.event("102")
    shop.wait(timedelta(minutes=41))
    [episode] = shop.episodes()
    # Step 1 went out at 09:40 São Paulo; step 2 is due at 09:00 there the next day.
    assert episode["next_due_at"].replace("Z", "+00:00") == "2026-01-06T12:00:00+00:00"


def test_an_answer_between_steps_cancels_the_rest(shop: Shop) -> None:
    shop.launch({**CAMPAIGN, "reentry_cooldown": "7d"})
    shop.event("103")
    shop.wait(timedelta(minutes=41))
    shop.event("103")  # the user is back
    with capture_logs() as logs:
        shop.wait(timedelta(days=1))
    skipped = [e for e in logs if e["event"] == "recovery.step.skipped"]
    assert [(e["step"], e["reason"], e["status"]) for e in skipped] == [
        (1, "user_active", "cancelled")
    ]
    assert shop.heard("103") == ["Ei, esqueceu algo no carrinho?", "10% off"]
    assert step_funnel(shop) == {0: (1, 1, 0)}
    # Quiet again, but within the re-entry cooldown: no second episode.
    assert [(e["status"], e["end_reason"]) for e in shop.episodes()] == [
        ("cancelled", "user_active")
    ]


def test_a_return_ends_the_episode_at_once_and_counts_if_within_24_hours(shop: Shop) -> None:
    later = {"schedule": "+3d 10:00", "blocks": [{"kind": "text", "text": "Volta!"}]}
    shop.launch({**CAMPAIGN, "steps": [CAMPAIGN["steps"][0], later], "reentry_cooldown": "7d"})
    shop.event("112")
    shop.event("113")
    shop.wait(timedelta(minutes=41))
    shop.wait(timedelta(hours=2))
    shop.event("112")  # back 2 h after step 1
    shop.wait(timedelta(hours=30))
    shop.event("113")  # back 32 h after step 1: not counted as a return of that step
    shop.wait(timedelta(seconds=2))
    ended = {e["contact_id"]: e for e in shop.episodes()}
    assert [e["status"] for e in ended.values()] == ["cancelled", "cancelled"]
    back_at = sorted(e["ended_at"] for e in ended.values())
    assert back_at[0].startswith("2026-01-05T14:41")
    assert step_funnel(shop) == {0: (2, 1, 0)}
    shop.wait(timedelta(days=3))
    assert "Volta!" not in shop.heard("112") + shop.heard("113")


def test_a_user_back_after_a_cancelled_episode_can_enter_again(shop: Shop) -> None:
    shop.launch()
    shop.event("111")
    shop.wait(timedelta(minutes=41))
    shop.event("111")
    shop.wait(timedelta(days=2))
    assert [e["status"] for e in shop.episodes()] == ["completed", "cancelled"]


def test_a_payment_converts_and_payers_never_enter(shop: Shop) -> None:
    converted = metric("reengage_episodes_ended_total", outcome="converted", reason="paid")
    started = metric("reengage_episodes_started_total")
    shop.launch()
    shop.event("104")
    shop.wait(timedelta(minutes=41))
    shop.event("104", "payment.confirmed")
    shop.event("105")
    shop.event("105", "payment.confirmed")
    shop.wait(timedelta(days=2))
    by_user = {e["contact_id"]: (e["status"], e["end_reason"]) for e in shop.episodes()}
    assert ("converted", "paid") in by_user.values()
    assert step_funnel(shop) == {0: (1, 1, 1)}  # paying is coming back too
    assert len(shop.episodes()) == 1  # 105 paid before going quiet: never entered
    assert shop.heard("105") == []
    assert metric("reengage_episodes_started_total") == started + 1
    assert metric("reengage_episodes_ended_total", outcome="converted", reason="paid") == (
        converted + 1
    )


def test_holdout_sends_nothing_but_is_tracked(shop: Shop) -> None:
    shop.launch({**CAMPAIGN, "holdout_percent": 100})
    shop.event("106")
    shop.wait(timedelta(days=2))
    [episode] = shop.episodes()
    assert (episode["holdout"], episode["status"]) == (True, "completed")
    assert shop.heard("106") == []
    deliveries = shop.call("get", "/v1/deliveries", None)
    assert {(d["status"], d["reason"]) for d in deliveries} == {("skipped", "holdout")}


def test_a_new_version_does_not_disturb_running_episodes(shop: Shop) -> None:
    shop.launch()
    shop.event("107")
    shop.wait(timedelta(minutes=41))
    changed = {
        **CAMPAIGN,
        "steps": [
            CAMPAIGN["steps"][0],
            {"schedule": "amanhã 09:00", "blocks": [{"kind": "text", "text": "Versão 2"}]},
        ],
    }
    shop.call("put", f"/v1/bots/{shop.bot}/campaign", changed)
    assert shop.call("post", f"/v1/bots/{shop.bot}/campaign/publish") == {"version": 2}
    shop.wait(timedelta(days=1))
    assert shop.heard("107")[-1] == "Última chance!"


def test_blocked_users_and_disabled_campaigns_stop_episodes(shop: Shop) -> None:
    completed = metric("reengage_episodes_ended_total", outcome="completed", reason="completed")
    shop.launch()
    shop.event("108")
    shop.event("109")
    shop.wait(timedelta(minutes=41))
    shop.fake.block(108)
    shop.wait(timedelta(days=1))
    assert shop.heard("109")[-1] == "Última chance!"
    # Both ran out of steps (108's last block then found the bot blocked).
    assert metric("reengage_episodes_ended_total", outcome="completed", reason="completed") == (
        completed + 2
    )
    shop.event("109")
    shop.wait(timedelta(minutes=41))
    shop.call("put", f"/v1/bots/{shop.bot}/campaign/enabled", {"enabled": False})
    shop.wait(timedelta(days=1))
    reasons = [e["end_reason"] for e in shop.episodes()]
    assert "campaign_disabled" in reasons


def test_a_campaign_without_active_blocks_allocates_nothing(shop: Shop) -> None:
    shop.launch(
        {
            **CAMPAIGN,
            "steps": [
                {"schedule": "30m", "blocks": [{"kind": "text", "text": "off", "active": False}]}
            ],
        }
    )
    shop.event("110")
    shop.wait(timedelta(days=1))
    assert shop.episodes() == []


def test_preview_uses_the_engine_schedule(shop: Shop) -> None:
    shop.call("put", f"/v1/bots/{shop.bot}/campaign", CAMPAIGN)
    steps = shop.call(
        "post",
        f"/v1/bots/{shop.bot}/campaign/preview",
        {"last_activity_at": "2026-01-05T12:00:00Z"},
    )
    assert [(s["due_at"], s["local"]) for s in steps] == [
        ("2026-01-05T12:40:00+00:00", "2026-01-05T09:40:00-03:00"),
        ("2026-01-06T12:00:00+00:00", "2026-01-06T09:00:00-03:00"),
    ]
    lisbon = shop.call(
        "post",
        f"/v1/bots/{shop.bot}/campaign/preview",
        {"last_activity_at": "2026-01-05T12:00:00Z", "time_zone": "Europe/Lisbon"},
    )
    assert lisbon[1]["due_at"] == "2026-01-06T09:00:00+00:00"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time_zone": "Mars/Base"}, "time_zone"),
        ({"steps": [{"schedule": "45s", "blocks": []}]}, "steps[0].schedule"),
        ({"steps": [{"schedule": "amanhã 25:00", "blocks": []}]}, "steps[0].schedule"),
        ({"steps": [{"schedule": "+0d 10:00", "blocks": []}]}, "steps[0].schedule"),
        (
            {"steps": [{"schedule": "1h", "blocks": [{"kind": "text", "text": "x" * 4097}]}]},
            "steps[0].blocks[0]",
        ),
        ({"steps": [{"schedule": "1h", "blocks": [{"kind": "photo"}]}]}, "steps[0].blocks[0]"),
        ({"holdout_percent": 150}, "holdout_percent"),
        ({"send_window": {"start": "21:00", "end": "08:00"}}, "send_window"),
    ],
)
def test_invalid_campaigns_are_refused_precisely(
    shop: Shop, change: dict[str, Any], field: str
) -> None:
    r = shop.client.put(
        f"/v1/bots/{shop.bot}/campaign", json={**CAMPAIGN, **change}, headers=shop.headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_blocks_are_deleted_after_their_time_within_telegrams_48_hours(shop: Shop) -> None:
    campaign = {
        **CAMPAIGN,
        "steps": [
            {
                "schedule": "30m",
                "blocks": [
                    {"kind": "text", "text": "Oferta relâmpago!", "auto_delete_after": "1h"},
                    {"kind": "text", "text": "Lembrete longo", "auto_delete_after": "3d"},
                ],
            }
        ],
    }
    shop.launch(campaign)
    shop.event("120")
    shop.wait(timedelta(minutes=41))
    assert shop.heard("120") == ["Oferta relâmpago!", "Lembrete longo"]
    shop.wait(timedelta(hours=1))
    [deleted] = shop.fake.calls_to("deleteMessage")
    assert [m.text for m in shop.fake.sent_messages(120) if m.deleted] == ["Oferta relâmpago!"]
    shop.wait(timedelta(days=4))
    assert len(shop.fake.calls_to("deleteMessage")) == 1  # past 48 h: not attempted
    with shop.runtime.sessions() as s:
        from sqlalchemy import select

        from reengage.adapters.db.models import Delivery

        statuses = sorted(str(d) for d in s.scalars(select(Delivery.delete_status)))
    assert statuses == ["deleted", "skipped:too_old_to_delete"]
    assert deleted.params["chat_id"] == 120


def test_an_optout_keyword_stops_the_episode_and_keeps_the_user_out(shop: Shop) -> None:
    opted_out = metric("reengage_episodes_ended_total", outcome="stopped", reason="opted_out")
    shop.launch({**CAMPAIGN, "optout_keywords": ["parar", "stop"]})
    shop.says("121", "oi")
    shop.wait(timedelta(minutes=41))
    shop.says("121", "PARAR")
    shop.wait(timedelta(days=3))
    assert shop.heard("121") == [
        "Ei, esqueceu algo no carrinho?",
        "10% off",
        # one confirmation, in the contact's language (their Telegram app is in English)
        "Done: you will not receive automatic messages any more. To receive them again, "
        "send START.",
    ]
    assert [(e["status"], e["end_reason"]) for e in shop.episodes()] == [("stopped", "opted_out")]
    assert metric("reengage_episodes_ended_total", outcome="stopped", reason="opted_out") == (
        opted_out + 1
    )


PNG = b"\x89PNG\r\n\x1a\n" + b"\x02" * 256


def test_media_is_stored_once_and_uploaded_once_per_bot(shop: Shop) -> None:
    r = shop.client.post(
        "/v1/media", headers=shop.headers, files={"file": ("promo.png", PNG, "image/png")}
    )
    assert r.status_code == 201, r.text
    asset = r.json()
    again = shop.client.post(
        "/v1/media", headers=shop.headers, files={"file": ("copy.png", PNG, "image/png")}
    ).json()
    assert again["id"] == asset["id"]  # the same bytes are stored once
    shop.launch(
        {
            **CAMPAIGN,
            "steps": [
                {
                    "schedule": "30m",
                    "blocks": [{"kind": "photo", "asset_id": asset["id"], "caption": "Promo"}],
                }
            ],
        }
    )
    shop.event("130")
    shop.event("131")
    shop.wait(timedelta(minutes=41))
    photos = shop.fake.calls_to("sendPhoto")
    assert len(photos) == 2
    assert [bool(c.files) for c in photos] == [True, False]  # uploaded, then by file_id
    assert shop.heard("131") == ["Promo"]


def test_another_organizations_asset_cannot_be_used(shop: Shop, runtime: Runtime) -> None:
    other = make_org(runtime, "Other")
    r = shop.client.post(
        "/v1/media",
        headers={"Authorization": f"Bearer {other.api_key}"},
        files={"file": ("x.png", PNG, "image/png")},
    )
    r = shop.client.put(
        f"/v1/bots/{shop.bot}/campaign",
        headers=shop.headers,
        json={
            **CAMPAIGN,
            "steps": [
                {"schedule": "30m", "blocks": [{"kind": "photo", "asset_id": r.json()["id"]}]}
            ],
        },
    )
    assert (r.status_code, r.json()["field"]) == (422, "steps[0].blocks[0].asset_id")
    empty = shop.client.post(
        "/v1/media", headers=shop.headers, files={"file": ("e.png", b"", "image/png")}
    )
    assert (empty.status_code, empty.json()["field"]) == (422, "file")


def test_steps_and_exclusions_are_edited_one_at_a_time(shop: Shop) -> None:
    base = f"/v1/bots/{shop.bot}/campaign"
    shop.call("post", f"{base}/steps", {"schedule": "30m"})
    shop.call("post", f"{base}/steps", {"schedule": "amanhã 09:00"})
    moved = shop.call("post", f"{base}/steps/1/move", {"offset": -1})
    assert [s["schedule"] for s in moved["draft"]["steps"]] == ["tomorrow 09:00", "30m"]
    bad = shop.call("put", f"{base}/steps/0/schedule", {"schedule": "amanhã 25:00"}, 422)
    # in the organization's language (pt-BR, the default)
    assert (bad["field"], bad["message"]) == ("schedule", "Horário inválido: 25:00")
    missing = shop.call("delete", f"{base}/steps/5", None, 422)
    assert missing["message"] == "O passo 6 não existe"
    assert shop.call("post", f"{base}/exclusions", {"user_id": "42"})["exclusions"] == ["42"]
    after = shop.call("delete", f"{base}/exclusions/42")
    assert after["exclusions"] == []
    assert [s["schedule"] for s in shop.call("delete", f"{base}/steps/0")["draft"]["steps"]] == [
        "30m"
    ]
