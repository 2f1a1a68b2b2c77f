"""A subscription that keeps failing is disabled after 24 h, and the operator is told where
they look: one message of the manager bot (the fake Telegram) to each admin of the
organization, in their language, never twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import ManagerNotice
from reengage.domain.timer import Purpose
from reengage.events.notice import ManagerNoticeHandler, notice_timer, notify_admins
from reengage.runtime import Runtime
from reengage.services import manager_access
from reengage.testing.telegram import FakeTelegram
from reengage.testing.time_travel import TimeTravel
from tests.e2e.conftest import Tenant
from tests.e2e.test_event_subscriptions import SUBS, closed_port_url
from tests.manager_console import MANAGER_TOKEN

ADMIN_PT, ADMIN_EN, OTHER_ADMIN = 9100001, 9100002, 9100003


@pytest.fixture
def runtime(db_url: str, make_runtime: Callable[..., Runtime], telegram_url: str) -> Runtime:
    return make_runtime(db_url, manager_bot_token=MANAGER_TOKEN, telegram_api_base=telegram_url)


def make_admin(runtime: Runtime, org_id: int, telegram_user_id: int, language: str) -> None:
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        code, _ = manager_access.create_invite(session, org_id, now)
        manager_access.redeem_invite(session, code, telegram_user_id, language, now)


def notices(fake: FakeTelegram, chat: int) -> list[str]:
    """What the manager bot delivered to an admin's chat (only it talks to admins here)."""
    return [m.text or "" for m in fake.sent_messages(chat)]


def test_a_subscription_failing_24_hours_is_disabled_and_each_admin_told_once(
    runtime: Runtime,
    tenant: Callable[[str], Tenant],
    clock: ManualClock,
    fake_telegram: FakeTelegram,
) -> None:
    t, other = tenant("acme"), tenant("other")
    make_admin(runtime, t.org_id, ADMIN_PT, "pt-BR")
    make_admin(runtime, t.org_id, ADMIN_EN, "en")
    make_admin(runtime, other.org_id, OTHER_ADMIN, "pt-BR")
    made: Any = t.post(SUBS, {"url": closed_port_url(), "event_types": ["contact.*"]})
    sub_id = made.json()["id"]
    contact = f"/v1/bots/{t.bot_id}/contacts/55"
    assert t.client.patch(contact, json={"opted_out": True}, headers=t.headers).is_success
    travel = TimeTravel(runtime, clock)
    travel.wait(timedelta(hours=23, minutes=59))
    sub: Any = t.get(f"{SUBS}/{sub_id}")
    assert (sub.json()["enabled"], sub.json()["disabled_at"]) == (True, None)
    assert notices(fake_telegram, ADMIN_PT) == []
    travel.wait(timedelta(minutes=2))
    [listed] = t.get(SUBS).json()  # type: ignore[attr-defined]
    assert (listed["enabled"], listed["disabled_reason"]) == (False, "failing")
    assert listed["disabled_at"] is not None
    [pt] = notices(fake_telegram, ADMIN_PT)
    [en] = notices(fake_telegram, ADMIN_EN)
    assert pt.startswith(f"⚠️ Eventos: a assinatura #{sub_id} ")
    assert en.startswith(f"⚠️ Events: subscription #{sub_id} ")
    assert notices(fake_telegram, OTHER_ADMIN) == []  # another organization's admin
    # Later events and days change nothing: each admin was told exactly once.
    assert t.client.patch(contact, json={"opted_out": False}, headers=t.headers).is_success
    travel.wait(timedelta(days=2))
    assert (len(notices(fake_telegram, ADMIN_PT)), len(notices(fake_telegram, ADMIN_EN))) == (1, 1)
    # Enabled again by the operator: the disable is forgotten.
    enabled: Any = t.client.patch(f"{SUBS}/{sub_id}", json={"enabled": True}, headers=t.headers)
    assert (enabled.json()["disabled_reason"], enabled.json()["disabled_at"]) == (None, None)


def test_a_notice_is_never_sent_twice_and_retried_only_when_telegram_surely_never_got_it(
    runtime: Runtime,
    tenant: Callable[[str], Tenant],
    fake_telegram: FakeTelegram,
) -> None:
    t = tenant("acme")
    make_admin(runtime, t.org_id, ADMIN_PT, "pt-BR")
    now = runtime.clock.now()
    with runtime.sessions.begin() as session:
        assert notify_admins(session, t.org_id, "k", {"en": "hello"}, now) == 1
    with runtime.sessions.begin() as session:  # the same notice again: recorded once
        assert notify_admins(session, t.org_id, "k", {"en": "hello"}, now) == 0
    handler = runtime.registry[Purpose.MANAGER_NOTICE]
    assert isinstance(handler, ManagerNoticeHandler)
    with runtime.sessions() as session:
        notice_id = session.scalars(select(ManagerNotice.id)).one()
    timer = notice_timer(notice_id, now)
    fake_telegram.fail_next(
        "sendMessage", error_code=500, description="Internal Server Error"
    )  # a 5xx of the API front: not delivered
    retry = handler.handle(timer, now)
    assert [t.key for t in retry.timers] == [timer.key]
    assert notices(fake_telegram, ADMIN_PT) == []
    handler.handle(timer, now + timedelta(seconds=10))
    assert notices(fake_telegram, ADMIN_PT) == ["hello"]
    # The timer again (a worker that died before acknowledging it): nothing is sent.
    handler.handle(timer, now + timedelta(seconds=20))
    assert notices(fake_telegram, ADMIN_PT) == ["hello"]
    with runtime.sessions() as session:
        row = session.scalars(select(ManagerNotice)).one()
        assert (row.status, row.attempts) == ("sent", 2)
