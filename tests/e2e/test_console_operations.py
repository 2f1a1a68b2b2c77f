"""The console's operating pages over plain HTTP, on the fake platforms and a manual clock:
episodes and deliveries, a contact's timeline, stopping an episode, sending a campaign to
oneself, timeouts at every level with the explain view, the handoff inbox, WhatsApp numbers."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import (
    AuditEntry,
    Bot,
    Contact,
    Conversation,
    Delivery,
    Episode,
    PolicyRow,
)
from reengage.domain.console_access import Role
from reengage.entrypoints.api.app import create_app
from reengage.entrypoints.demo import FLOW
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram
from reengage.testing.time_travel import TimeTravel
from reengage.testing.whatsapp import FakeWhatsApp
from tests.channel_harness import TG_TOKEN, WA_PHONE, WA_TOKEN
from tests.conftest import REDIS_URL
from tests.e2e.console_client import ConsoleBrowser, make_user
from tests.e2e.shop import CAMPAIGN, START
from tests.factories import make_org

OWNER = "owner@acme.example"


class Operator:
    """The owner in the console, the same organization's API key for what the console does
    not do (campaigns, events), and time passing through the real scheduler."""

    def __init__(self, runtime: Runtime, client: TestClient, clock: ManualClock) -> None:
        self.runtime, self.client, self.clock = runtime, client, clock
        org = make_org(runtime, "Acme")
        self.org_id = org.org_id
        self.headers = {"Authorization": f"Bearer {org.api_key}"}
        make_user(runtime, org.org_id, OWNER)
        self.browser = ConsoleBrowser(client, org)
        assert self.browser.login(OWNER).status_code == 303
        self.travel = TimeTravel(runtime, clock)
        self.ids = itertools.count(1)
        self.bot = self.api("post", "/v1/bots", {"name": "Loja", **TELEGRAM})["id"]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.client.request(method, path, json=body, headers=self.headers)
        assert answer.status_code < 300, answer.text
        return answer.json()

    def launch(self, campaign: dict[str, Any] = CAMPAIGN) -> None:
        self.api("put", f"/v1/bots/{self.bot}/campaign", campaign)
        self.api("post", f"/v1/bots/{self.bot}/campaign/publish")
        self.api("put", f"/v1/bots/{self.bot}/campaign/enabled", {"enabled": True})

    def event(self, user: str, kind: str = "message.user", **extra: str) -> None:
        body = {"id": f"e{next(self.ids)}", "type": kind, "bot_id": self.bot, "user_id": user}
        self.api("post", "/v1/events", body | extra)

    def get(self, path: str) -> str:
        page = self.browser.get(path)
        assert page.status_code == 200, (path, page.status_code, page.text[:300])
        return page.text

    def post(self, path: str, form: dict[str, str] | None = None) -> Any:
        return self.browser.post(path, form)

    def contact_id(self, user: str) -> int:
        with self.runtime.sessions() as session:
            found = session.scalar(select(Contact.id).where(Contact.external_id == user))
        assert found is not None
        return found

    def episodes(self) -> list[tuple[str, str, str | None]]:
        with self.runtime.sessions() as session:
            rows = session.execute(
                select(Contact.external_id, Episode.status, Episode.end_reason)
                .join(Contact, Contact.id == Episode.contact_id)
                .order_by(Episode.id)
            )
            return [(u, s, r) for u, s, r in rows]

    def audit(self) -> list[tuple[str, str]]:
        with self.runtime.sessions() as session:
            return [(e.actor, e.action) for e in session.scalars(select(AuditEntry))]


TELEGRAM = {"channel": "telegram", "credentials": {"token": TG_TOKEN}}


@pytest.fixture
def ops_runtime(
    db_url: str,
    make_runtime: Callable[..., Runtime],
    telegram_url: str,
    whatsapp_url: str,
    fake_telegram: FakeTelegram,
    fake_whatsapp: FakeWhatsApp,
) -> Runtime:
    return make_runtime(
        db_url,
        telegram_api_base=telegram_url,
        whatsapp_api_base=whatsapp_url,
    )


@pytest.fixture
def op(ops_runtime: Runtime, clock: ManualClock) -> Iterator[Operator]:
    clock.set(START)
    with TestClient(create_app(ops_runtime)) as client:
        yield Operator(ops_runtime, client, clock)


def heard(fake: FakeTelegram, user: str) -> list[str]:
    return [m.text or m.caption or "" for m in fake.sent_messages(int(user))]


def test_episodes_are_listed_filtered_and_one_contacts_episode_is_stopped(
    op: Operator, fake_telegram: FakeTelegram
) -> None:
    op.launch()
    op.event("101")
    op.event("102")
    op.travel.wait(timedelta(minutes=41))  # threshold 10m + 30m: the first step went out
    assert heard(fake_telegram, "101") == ["Ei, esqueceu algo no carrinho?", "10% off"]
    page = op.get("/console/episodes")
    assert page.count('data-episode="') == 2
    assert ">101<" in page
    assert ">102<" in page
    assert op.get("/console/episodes?status=running").count('data-episode="') == 2
    assert op.get("/console/episodes?status=completed").count('data-episode="') == 0
    assert op.get(f"/console/episodes?bot={op.bot + 1000}").count('data-episode="') == 0
    assert op.get("/console/episodes?since=2026-01-06").count('data-episode="') == 0
    assert op.get("/console/episodes?until=2026-01-05").count('data-episode="') == 2
    sent = op.get(f"/console/deliveries?bot={op.bot}&status=sent")
    assert sent.count('data-delivery="') == 4
    for bad in ("status=lost", "since=2026-13-01", "bot=abc", "reason=" + "x" * 65):
        refused = op.browser.get(f"/console/episodes?{bad}")
        assert refused.status_code == 422, bad
    contact = op.contact_id("101")
    page = op.get(f"/console/contacts/{contact}")
    assert "episode_started" in page
    assert "recovery sent" in page
    assert "inactivity_detected" in page  # the conversation's own log
    [episode_id] = [int(chunk.split('"')[0]) for chunk in page.split('data-episode="')[1:] if chunk]
    stopped = op.post(f"/console/episodes/{episode_id}/stop")
    assert stopped.status_code == 303
    assert stopped.headers["location"] == f"/console/contacts/{contact}?done=stopped"
    assert "Episódio parado" in op.get(stopped.headers["location"])
    assert op.episodes() == [("101", "stopped", "operator"), ("102", "running", None)]
    assert op.post(f"/console/episodes/{episode_id}/stop").status_code == 303  # no-op again
    assert op.get("/console/episodes?status=stopped&reason=operator").count('data-episode="') == 1
    op.travel.wait(timedelta(days=1))
    assert heard(fake_telegram, "102")[-1] == "Última chance!"
    assert heard(fake_telegram, "101")[-1] == "10% off"  # nothing after the stop
    assert (f"user {OWNER}", "episode.stop") in op.audit()


def test_send_this_campaign_to_me_now_runs_one_episode_through_the_engine(
    op: Operator, fake_telegram: FakeTelegram
) -> None:
    op.launch()
    op.event("900")  # the operator wrote to the bot: they are one of its contacts
    started = op.post("/console/send-to-me", {"bot_id": str(op.bot), "user_id": "900"})
    assert started.status_code == 303, started.text
    contact = op.contact_id("900")
    assert started.headers["location"] == f"/console/contacts/{contact}?done=sent"
    assert "envio de teste" in op.get(started.headers["location"])  # marked as the test it is
    again = op.post("/console/send-to-me", {"bot_id": str(op.bot), "user_id": "900"})
    assert again.status_code == 303  # a second click: the same episode
    op.travel.wait(timedelta(seconds=10))  # not the threshold, nor the step's 30 minutes
    assert heard(fake_telegram, "900") == ["Ei, esqueceu algo no carrinho?", "10% off"]
    op.travel.wait(timedelta(minutes=45))  # their silence passes the threshold: no second one
    assert op.episodes() == [("900", "running", None)]
    assert len(heard(fake_telegram, "900")) == 2
    op.event("900")  # they answer: the test's episode ends, its second step never comes
    op.travel.wait(timedelta(days=1, hours=1))
    episodes = op.episodes()
    assert episodes[0] == ("900", "cancelled", "user_active")
    # Quiet again past the threshold: a real episode of that new silence, which does send
    # the second step; the test's episode sent its first step only.
    assert episodes[1:] == [("900", "completed", "completed")]
    with op.runtime.sessions() as session:
        first = session.scalar(select(func.min(Episode.id)))
        mine = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.episode_id == first)
        )
    assert mine == 2
    assert heard(fake_telegram, "900").count("Última chance!") == 1
    assert (f"user {OWNER}", "episode.test_send") in op.audit()
    # The campaign's results count the real episode only: a test send is not a recovery.
    [version] = op.api("get", f"/v1/bots/{op.bot}/campaign/results")["versions"]
    assert version["treatment"]["started"] == 1
    assert [s["treatment"]["sent"] for s in version["steps"]] == [1, 1]


def test_send_to_me_says_why_it_cannot(
    op: Operator, ops_runtime: Runtime, fake_telegram: FakeTelegram
) -> None:
    op.event("900")
    form = {"bot_id": str(op.bot), "user_id": "900"}
    no_campaign = op.post("/console/send-to-me", form)
    assert no_campaign.status_code == 422
    assert "não tem campanha publicada e ativada" in no_campaign.text
    op.launch()
    stranger = op.post("/console/send-to-me", {**form, "user_id": "555"})
    assert stranger.status_code == 422
    assert "ainda não escreveu para o bot" in stranger.text
    op.api("patch", f"/v1/bots/{op.bot}/contacts/900", {"opted_out": True})
    opted_out = op.post("/console/send-to-me", form)
    assert opted_out.status_code == 422
    assert "pediu para não receber" in opted_out.text
    other = make_org(ops_runtime, "Other")
    with ops_runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Bot)) == 1
    elsewhere = op.post("/console/send-to-me", {"bot_id": "999999", "user_id": "900"})
    assert elsewhere.status_code == 404
    assert other.org_id != op.org_id
    assert op.post("/console/send-to-me", {"bot_id": "x", "user_id": "900"}).status_code == 422
    op.travel.wait(timedelta(minutes=1))
    assert op.episodes() == []
    assert heard(fake_telegram, "900") == []


def test_timeouts_at_every_level_are_edited_and_explained(op: Operator) -> None:
    op.api("put", f"/v1/bots/{op.bot}/flows/atendimento", FLOW)
    org_form = {
        "enabled": "true",
        "timeout": "30m",
        "action": "close",
        "reminders": "10m | Ainda por aí?\n20m | template: lembrete",
        "final_text": "Até logo!",
        "applies_question": "on",
        "applies_bot_wait": "on",
    }
    assert op.post("/console/timeouts/edit", org_form).status_code == 303
    assert op.post(f"/console/timeouts/edit?bot={op.bot}", {"timeout": "45m"}).status_code == 303
    node = f"/console/timeouts/edit?bot={op.bot}&flow=atendimento&node=plan"
    assert (
        op.post(node, {"timeout": "5m", "action": "handoff", "queue": "vendas"}).status_code == 303
    )
    view = op.get("/console/timeouts")
    for scope in ("organization", f"bot:{op.bot}", f"node:{op.bot}:atendimento:plan"):
        assert f'data-scope="{scope}"' in view
    assert f"node={'plan'}" in view  # the question nodes are offered as levels
    edit = op.get("/console/timeouts/edit")
    assert "10m | Ainda por aí?\n20m | template: lembrete" in edit  # the form shows what is set
    assert op.api("get", "/v1/policies/organization")["settings"]["reminders"][1] == {
        "after": "20m",
        "template": "lembrete",
        "text": None,
    }
    with op.runtime.sessions() as session:
        rows = session.scalar(select(func.count()).select_from(PolicyRow))
    refused = op.post(f"/console/timeouts/edit?bot={op.bot}", {"timeout": "forever"})
    assert refused.status_code == 422
    assert "Valor inválido em timeout" in refused.text
    assert 'value="forever"' in refused.text  # the form keeps what was typed
    bad_line = op.post(f"/console/timeouts/edit?bot={op.bot}", {"reminders": "no bar here"})
    assert bad_line.status_code == 422
    assert op.api("get", f"/v1/bots/{op.bot}/policy")["settings"] == {"timeout": "45m"}
    with op.runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(PolicyRow)) == rows
    missing = op.browser.get(f"/console/timeouts/edit?bot={op.bot}&flow=nope")
    assert missing.status_code == 404
    # The explain view of one conversation: each field's level, what fires next and when.
    op.event("101")
    op.event("101", kind="message.bot")
    with op.runtime.sessions() as session:
        conv_id = session.scalar(select(Conversation.id))
    api = op.api("get", f"/v1/conversations/{conv_id}/inactivity")
    page = op.get(f"/console/conversations/{conv_id}/timeout")
    assert api["sources"]["timeout"] == "bot"
    assert 'data-field="timeout"><td>timeout</td><td><pre>&#34;45m&#34;</pre></td><td>bot<' in page
    assert 'data-field="final_text"><td>final_text</td>' in page
    assert "organização" in page
    assert f'data-situation="{api["situation"]}"' in page
    assert api["next_stage"] is not None
    assert api["next_stage"]["at"] in page
    deleted = op.post(f"/console/timeouts/delete?bot={op.bot}")
    assert deleted.status_code == 303
    assert f'data-scope="bot:{op.bot}"' not in op.get("/console/timeouts")
    actions = [a for who, a in op.audit() if who == f"user {OWNER}"]
    assert actions.count("policy.put") == 3
    assert actions[-1] == "policy.delete"


def test_the_handoff_inbox_takes_replies_and_closes(
    op: Operator, fake_telegram: FakeTelegram, clock: ManualClock
) -> None:
    op.event("101")
    op.event("101", kind="conversation.status", status="handoff")
    inbox = op.get("/console/handoff")
    with op.runtime.sessions() as session:
        conv_id = session.scalar(select(Conversation.id))
    assert f'data-conversation="{conv_id}"' in inbox
    assert ">101</a>" in inbox
    assert op.post(f"/console/handoff/{conv_id}/take").status_code == 303
    assert f"data-agent>{OWNER}<" in op.get("/console/handoff")
    assert op.post(f"/console/handoff/{conv_id}/reply", {"text": " "}).status_code == 422
    replied = op.post(f"/console/handoff/{conv_id}/reply", {"text": "Oi! Sou a Ana."})
    assert replied.status_code == 303
    op.travel.drain()
    assert heard(fake_telegram, "101") == ["Oi! Sou a Ana."]
    clock.advance(timedelta(minutes=7))
    assert "data-agent-silent>7 min<" in op.get("/console/handoff")
    op.event("101")  # the customer answers: now they wait for the agent
    clock.advance(timedelta(minutes=3))
    inbox = op.get("/console/handoff")
    assert "data-waits>3 min<" in inbox
    assert "data-agent-silent>10 min<" in inbox
    assert op.post(f"/console/handoff/{conv_id}/close").status_code == 303
    assert "Ninguém esperando um humano." in op.get("/console/handoff")
    with op.runtime.sessions() as session:
        assert session.scalar(select(Conversation.status)) == "closed"


def test_a_whatsapp_number_is_added_once_the_graph_api_accepts_it(
    op: Operator, fake_whatsapp: FakeWhatsApp
) -> None:
    form = {
        "name": "Loja WA",
        "phone_number_id": WA_PHONE,
        "access_token": WA_TOKEN,
        "app_secret": "app-secret-for-tests",
    }
    for field, bad in (("phone_number_id", "abc"), ("access_token", "has space"), ("name", "")):
        refused = op.post("/console/bots/whatsapp", {**form, field: bad})
        assert refused.status_code == 422, field
    assert fake_whatsapp.calls == []  # malformed: never sent to Meta
    wrong = op.post("/console/bots/whatsapp", {**form, "access_token": "not-a-valid-token"})
    assert wrong.status_code == 422
    assert "O WhatsApp recusou" in wrong.text
    lookups = [c for c in fake_whatsapp.calls if c.http_method == "GET"]
    assert [c.path.rsplit("/", 1)[-1] for c in lookups] == [WA_PHONE]
    added = op.post("/console/bots/whatsapp", form)
    assert added.status_code == 303, added.text
    page = op.get(added.headers["location"])
    bot_id = added.headers["location"].rsplit("/", 1)[-1]
    public = op.runtime.settings.public_url.rstrip("/")
    callback = f"{public}/webhooks/whatsapp/{bot_id}"
    assert callback in page
    verify = page.split("<dt>Token de verificação</dt><dd><code>")[1].split("<")[0]
    status = op.get(f"/console/bots/{bot_id}/status")
    assert 'data-status="ok"' in status
    assert "+1 555-" in status
    handshake = op.client.get(
        f"/webhooks/whatsapp/{bot_id}",
        params={"hub.mode": "subscribe", "hub.verify_token": verify, "hub.challenge": "42"},
    )
    assert (handshake.status_code, handshake.text) == (200, "42")
    with op.runtime.sessions() as session:
        channels = sorted(session.scalars(select(Bot.channel)))
    assert channels == ["telegram", "whatsapp"]
    assert WA_TOKEN not in op.get("/console/audit")
    fake_whatsapp.revoke_token(WA_TOKEN)
    assert 'data-status="refused"' in op.get(f"/console/bots/{bot_id}/status")


def test_a_viewer_sees_the_operating_pages_without_their_forms(
    op: Operator, ops_runtime: Runtime
) -> None:
    make_user(ops_runtime, op.org_id, "vera@acme.example", Role.VIEWER)
    op.client.cookies.clear()
    viewer = ConsoleBrowser(op.client)
    assert viewer.login("vera@acme.example").status_code == 303
    for path in ("/console/episodes", "/console/timeouts", "/console/timeouts/edit"):
        page = viewer.get(path)
        assert page.status_code == 200, path
        assert 'method="post"' not in page.text.split("</header>")[1], path


@pytest.fixture
def redis_op(
    pg_db: str,
    make_runtime: Callable[..., Runtime],
    redis_client: Any,
    telegram_url: str,
    fake_telegram: FakeTelegram,
    clock: ManualClock,
) -> Iterator[Operator]:
    runtime = make_runtime(pg_db, redis_url=REDIS_URL, telegram_api_base=telegram_url)
    clock.set(START)
    with TestClient(create_app(runtime)) as client:
        yield Operator(runtime, client, clock)


def test_send_to_me_in_production_mode_reads_the_activity_still_in_redis(
    redis_op: Operator, fake_telegram: FakeTelegram
) -> None:
    op = redis_op
    op.launch()
    op.event("900")  # hot in Redis, not yet in PostgreSQL
    started = op.post("/console/send-to-me", {"bot_id": str(op.bot), "user_id": "900"})
    assert started.status_code == 303, started.text
    op.travel.wait(timedelta(minutes=45))
    assert heard(fake_telegram, "900") == ["Ei, esqueceu algo no carrinho?", "10% off"]
    assert op.episodes() == [("900", "running", None)]
