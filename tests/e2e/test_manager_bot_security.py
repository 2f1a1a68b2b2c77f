"""The manager bot's doors: invites, admins only, and buttons nobody can forge or reuse."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import structlog

from reengage.adapters.clock import ManualClock
from reengage.domain import button as btn
from reengage.domain import policy as pol
from reengage.entrypoints.manager_bot import campaign_screens as scr
from reengage.entrypoints.manager_bot.actions import RECOVERY, Rec
from reengage.entrypoints.manager_bot.context import Admin, Manager
from reengage.entrypoints.manager_bot.start import main_menu
from reengage.entrypoints.manager_bot.timeouts import timeouts_screen
from reengage.runtime import Runtime
from reengage.services.campaign_preview import Preview
from tests.e2e.shop import START, Shop
from tests.factories import make_bot, make_org
from tests.manager_console import Console

ADMIN, OTHER_ADMIN, STRANGER = 5_550_001, 5_550_002, 6_660_001
EXPIRED = "Este botão expirou, envie /start"
REFUSED = (
    "Desculpe, este bot é só para administradores convidados. / "
    "Sorry, this bot is only for invited admins."
)


@pytest.fixture
def runtime(db_url: str, make_runtime: Callable[..., Runtime], telegram_url: str) -> Runtime:
    return make_runtime(db_url, telegram_api_base=telegram_url)


def invite(shop: Shop) -> str:
    return str(shop.call("post", "/v1/admin-invites")["code"])


def draft(shop: Shop) -> dict[str, Any] | None:
    r = shop.client.get(f"/v1/bots/{shop.bot}/campaign", headers=shop.headers)
    return r.json()["draft"] if r.status_code == 200 else None


def at_campaign(shop: Shop, console: Console, user: int = ADMIN) -> str:
    """Invite `user`, open the bot's campaign; the data of its "ignore payers" button."""
    console.send(user, f"/start {invite(shop)}")
    console.press(user, "🔁 Recuperação")
    console.press(user, "🤖 Loja")
    return console.data_of(user, "💳 Ignorar pagantes: sim")


def tampered(data: str) -> str:
    prefix, token = data.split(":")
    raw = bytearray(base64.urlsafe_b64decode(token + "=="))
    raw[8] ^= 0x01  # the low byte of the object (bot) id
    return f"{prefix}:{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


def forged() -> str:
    return "recovery:" + base64.urlsafe_b64encode(os.urandom(35)).rstrip(b"=").decode()


def test_a_valid_button_changes_the_draft(shop: Shop, console: Console) -> None:
    console.press_data(ADMIN, at_campaign(shop, console))
    assert draft(shop) == {"ignore_paid": False}
    assert "Ignorar pagantes: não" in console.screen(ADMIN)
    assert console.answers()[-1].get("show_alert") in (None, False)


@pytest.mark.parametrize("attack", ["forged", "tampered", "expired", "other_admin"])
def test_refused_buttons_change_nothing_and_are_logged(
    shop: Shop, console: Console, clock: ManualClock, attack: str
) -> None:
    data, user = at_campaign(shop, console), ADMIN
    if attack == "forged":
        data = forged()
    elif attack == "tampered":
        data = tampered(data)
    elif attack == "expired":
        clock.advance(btn.TTL)
    else:
        console.send(OTHER_ADMIN, f"/start {invite(shop)}")  # same organization
        user = OTHER_ADMIN
    before = draft(shop)
    screen = console.screen(ADMIN)
    with structlog.testing.capture_logs() as logs:
        console.press_data(user, data, message_id=console.current[ADMIN])
    assert draft(shop) == before
    assert console.screen(ADMIN) == screen
    answer = console.answers()[-1]
    assert (answer["text"], answer["show_alert"]) == (EXPIRED, True)
    reason = {"forged": "bad_signature", "tampered": "bad_signature", "expired": "expired"}
    [refused] = [e for e in logs if e["event"] == "manager.callback.refused"]
    assert refused["reason"] == reason.get(attack, "bad_signature")
    assert refused["telegram_user_id"] == user


def test_a_button_replayed_after_expiry_is_refused(
    shop: Shop, console: Console, clock: ManualClock
) -> None:
    data = at_campaign(shop, console)
    console.press_data(ADMIN, data)
    assert draft(shop) == {"ignore_paid": False}
    clock.advance(btn.TTL + timedelta(minutes=1))
    console.press_data(ADMIN, data)
    assert draft(shop) == {"ignore_paid": False}
    assert console.answers()[-1]["text"] == EXPIRED


def test_a_button_that_changes_something_works_once(
    shop: Shop, console: Console, clock: ManualClock
) -> None:
    """ "Ignore payers" flips the setting: pressed again (a double tap, a replayed update) it
    would flip it back. It works once; screens can be opened again and again."""
    data = at_campaign(shop, console)
    console.press_data(ADMIN, data)
    assert draft(shop) == {"ignore_paid": False}
    with structlog.testing.capture_logs() as logs:
        console.press_data(ADMIN, data)
    assert draft(shop) == {"ignore_paid": False}
    assert console.answers()[-1]["text"] == EXPIRED
    assert [e["reason"] for e in logs if e["event"] == "manager.callback.refused"] == [
        "already_used"
    ]
    steps = console.data_of(ADMIN, "🪜 Passos")
    console.press_data(ADMIN, steps)
    console.press_data(ADMIN, steps)  # a screen: pressed twice, shown twice
    assert console.answers()[-1].get("show_alert") in (None, False)


def test_an_admin_removed_meanwhile_is_refused_at_once(shop: Shop, console: Console) -> None:
    data = at_campaign(shop, console)
    r = shop.client.delete(f"/v1/admins/{ADMIN}", headers=shop.headers)
    assert r.status_code == 204
    assert shop.call("get", "/v1/admins") == []
    console.press_data(ADMIN, data)  # a fresh, correctly signed button
    assert draft(shop) is None  # nothing changed: no campaign was even created
    assert console.answers()[-1]["text"] == REFUSED
    other = shop.client.delete(f"/v1/admins/{OTHER_ADMIN}", headers=shop.headers)
    assert other.status_code == 404


def test_another_organizations_admin_cannot_reach_this_bot(
    shop: Shop, console: Console, runtime: Runtime
) -> None:
    other = make_org(runtime, "Other")
    make_bot(runtime, other.org_id, name="Theirs")
    code = shop.client.post(
        "/v1/admin-invites", headers={"Authorization": f"Bearer {other.api_key}"}
    ).json()["code"]
    console.send(OTHER_ADMIN, f"/start {code}")
    console.press(OTHER_ADMIN, "🔁 Recuperação")
    assert [b for b in console.buttons(OTHER_ADMIN) if b.startswith("🤖")] == ["🤖 Theirs"]
    # Even a correctly signed button naming this organization's bot finds nothing.
    manager: Manager = console.dp["manager"]
    button = btn.Button(Rec.TOGGLE_PAID, shop.bot)
    data = btn.sign(manager.key, RECOVERY, OTHER_ADMIN, button, START + btn.TTL)
    console.press_data(OTHER_ADMIN, data)
    assert draft(shop) is None
    assert console.answers()[-1]["show_alert"] is True


def test_strangers_reach_no_menu(shop: Shop, console: Console) -> None:
    manager: Manager = console.dp["manager"]
    for text in ("/start", "oi", "/start not-a-code"):
        console.send(STRANGER, text)
    data = btn.sign(manager.key, RECOVERY, STRANGER, btn.Button(Rec.BOTS), START + btn.TTL)
    with structlog.testing.capture_logs() as logs:
        console.press_data(STRANGER, data, message_id=1)
    texts = [m.text for m in console.messages(STRANGER)]
    assert texts == [REFUSED, REFUSED, "Código de convite inválido, já usado ou expirado."]
    assert all(m.reply_markup is None for m in console.messages(STRANGER))
    assert console.answers()[-1]["show_alert"] is True
    assert [e["reason"] for e in logs if e["event"] == "manager.callback.refused"] == ["not_admin"]


def test_an_invite_works_once_and_expires(shop: Shop, console: Console, clock: ManualClock) -> None:
    code = invite(shop)
    console.send(ADMIN, f"/start {code}")
    console.send(STRANGER, f"/start {code}")
    stale = invite(shop)
    clock.advance(timedelta(days=7))
    console.send(OTHER_ADMIN, f"/start {stale}")
    bad = "Código de convite inválido, já usado ou expirado."
    assert console.screen(STRANGER) == bad
    assert console.screen(OTHER_ADMIN) == bad
    console.send(STRANGER, "/start")
    assert console.screen(STRANGER) == REFUSED


def test_the_longest_callback_data_fits_64_bytes(runtime: Runtime) -> None:
    manager = Manager(runtime)
    admin = Admin(telegram_id=2**52, org_id=1, language="pt-BR")
    huge = 2**63 - 1
    step = {
        "schedule": "+365d 23:59",
        "blocks": [
            {"kind": "photo", "asset_id": huge, "caption": "x" * 1024},
            {"kind": "text", "text": "y" * 4096, "delay": "1d", "auto_delete_after": "2d"},
        ],
    }
    view = scr.CampaignView(
        huge,
        "b" * 200,
        True,
        2**31 - 1,
        {"steps": [step] * 3, "exclusions": [str(huge), "not-numeric@user", "1"]},
    )
    screens = [
        main_menu(manager, admin),
        scr.bots_screen(manager.keys(admin), [(huge, "bot")], RECOVERY, Rec.CAMPAIGN),
        scr.campaign_screen(manager.keys(admin), view),
        scr.exclusions_screen(manager.keys(admin), view),
        scr.steps_screen(manager.keys(admin), view),
        scr.step_screen(manager.keys(admin), view, 2),
        scr.block_screen(manager.keys(admin), view, 2, 0),
        scr.block_screen(manager.keys(admin), view, 2, 1),
        scr.preview_screen(manager.keys(admin), view, Preview([])),
        timeouts_screen(manager.keys(admin), huge, "bot", pol.resolve([], False)),
    ]
    data = [
        b.callback_data or ""
        for _, markup in screens
        for row in markup.inline_keyboard
        for b in row
    ]
    longest = max(len(d.encode()) for d in data)
    assert len(data) > 40
    assert longest <= 64
    assert longest == 56  # "recovery:" / "timeouts:" and a 47-character token
