"""Conversation inactivity policies end to end: HTTP API, Telegram fake, manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Conversation
from reengage.adapters.redis.sharded_activity import ShardedActivityStore
from reengage.delivery import attempt
from reengage.domain.policy import LEGACY_MESSAGE
from reengage.entrypoints.api.app import create_app
from reengage.runtime import Runtime
from reengage.testing.telegram import FakeTelegram
from reengage.timers.executors import InlineExecutor
from reengage.timers.sharded_store import ShardedTimerStore
from tests.channel_harness import TG_TOKEN
from tests.e2e.harness import CLUSTER, MODES, Owner, runtime_in_mode

CHAT = 5550001
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
    ],
}
RESCUE = {
    "nodes": [
        {"id": "r1", "type": "message", "text": "Vamos recomeçar?", "next": "r2"},
        {"id": "r2", "type": "question", "text": "Quer ver os planos? (sim/não)", "var": "again"},
    ]
}


class Bot(Owner):
    """A Telegram bot with the sales and rescue flows; its owner sets policies."""

    def __init__(
        self, runtime: Runtime, client: TestClient, fake: FakeTelegram, clock: ManualClock
    ) -> None:
        super().__init__(runtime, client, fake, clock)
        self.id = self.call(
            "post",
            "/v1/bots",
            {"name": "Loja", "channel": "telegram", "credentials": {"token": TG_TOKEN}},
        )["id"]
        self.api("put", f"/v1/bots/{self.id}/flows/sales", SALES)
        self.api("put", f"/v1/bots/{self.id}/flows/rescue", RESCUE)
        self.api("put", f"/v1/bots/{self.id}/entry-flow", {"entry_flow": "sales"})

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return self.call(method, path, body)

    def drain(self) -> None:
        self.travel.drain()

    def says(self, text: str, chat: int = CHAT) -> None:
        self.telegram_says(self.id, chat, text)
        self.wait(2 / 60)  # the bot's answers go out paced, one a second in a chat

    def wait(self, minutes: float) -> None:
        """Let time pass, jumping from one due timer to the next (each fires on its time)."""
        self.travel.wait(timedelta(minutes=minutes))

    def heard(self, chat: int = CHAT) -> list[str]:
        return [m.text or "" for m in self.fake.sent_messages(chat)]

    def conversation(self, chat: int = CHAT) -> dict[str, Any]:
        [conv] = [
            c
            for c in self.api("get", "/v1/conversations", None)
            if c["user_id"] == str(chat) and c["status"] != "closed"
        ] or [self.api("get", "/v1/conversations")[0]]
        return dict(conv)

    def log(self, conversation_id: int) -> list[str]:
        return self.conversation_log(conversation_id)


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return runtime_in_mode(request, tmp_path, default_inactivity_threshold=timedelta(days=2))


@pytest.fixture
def bot(runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock) -> Iterator[Bot]:
    with TestClient(create_app(runtime)) as client:
        yield Bot(runtime, client, fake_telegram, clock)


CLOSE_POLICY = {
    "enabled": True,
    "timeout": "10m",
    "action": "close",
    "final_text": "Encerrando por falta de resposta.",
    "reminders": [{"after": "3m", "text": "Ainda está aí?"}],
}


def test_silence_brings_a_reminder_then_the_close(bot: Bot) -> None:
    bot.api("put", f"/v1/bots/{bot.id}/flows/sales/nodes/plan/policy", CLOSE_POLICY)
    bot.says("oi")
    assert bot.heard() == ["Olá! Sou o bot da loja.", "Qual plano você quer? (mensal/anual)"]
    bot.wait(2.5)
    assert bot.heard()[-1] == "Qual plano você quer? (mensal/anual)"
    bot.wait(1)
    assert bot.heard()[-1] == "Ainda está aí?"
    bot.wait(6)
    assert bot.heard()[-1] == "Ainda está aí?"
    bot.wait(1)
    assert bot.heard()[-1] == "Encerrando por falta de resposta."
    conv = bot.api("get", "/v1/conversations")[0]
    assert conv["status"] == "closed"
    assert bot.log(conv["id"]) == ["reminder_sent", "closed_by_timeout"]
    bot.wait(60)
    assert len(bot.heard()) == 4  # nothing more, ever


@pytest.mark.parametrize("runtime", [CLUSTER], indirect=True)
def test_silence_brings_a_reminder_then_the_close_on_a_redis_cluster(bot: Bot) -> None:
    assert isinstance(bot.runtime.timers, ShardedTimerStore)
    assert isinstance(bot.runtime.activity, ShardedActivityStore)
    test_silence_brings_a_reminder_then_the_close(bot)


def test_a_crash_between_a_reminders_answer_and_its_log_line_sends_nothing_twice(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer of a sent reminder is committed first, its line in the conversation's log
    after, with the batch's others: a process dying in between leaves the timer unacknowledged,
    and its next run finds the reminder sent and writes the line, once."""
    logged = attempt._log_reminders
    crashed: list[int] = []

    def dies_before_the_log(deps: Any, ids: Any, now: datetime) -> None:
        if ids and not crashed:
            crashed.append(len(ids))
            raise RuntimeError("the process died here")
        logged(deps, ids, now)

    monkeypatch.setattr(attempt, "_log_reminders", dies_before_the_log)
    bot.api("put", f"/v1/bots/{bot.id}/flows/sales/nodes/plan/policy", CLOSE_POLICY)
    bot.says("oi")
    bot.wait(3.5)
    assert crashed == [1]
    assert bot.heard()[-1] == "Ainda está aí?"
    bot.wait(7)
    assert bot.heard()[2:] == ["Ainda está aí?", "Encerrando por falta de resposta."]
    conv = bot.api("get", "/v1/conversations")[0]
    assert bot.log(conv["id"]) == ["reminder_sent", "closed_by_timeout"]


def test_an_answer_between_reminder_and_close_keeps_the_conversation(bot: Bot) -> None:
    bot.api("put", f"/v1/bots/{bot.id}/flows/sales/policy", CLOSE_POLICY)
    bot.says("oi")
    bot.wait(4)
    assert bot.heard()[-1] == "Ainda está aí?"
    bot.says("anual")
    assert bot.heard()[-1] == "Qual seu e-mail?"
    bot.wait(6)  # past the first silence's close time
    conv = bot.api("get", "/v1/conversations")[0]
    assert conv["status"] == "bot"
    assert conv["context_variables"] == {"plan": "anual"}
    assert "Encerrando por falta de resposta." not in bot.heard()


def test_the_most_specific_level_wins(bot: Bot) -> None:
    bot.api(
        "put",
        "/v1/policies/organization",
        {"enabled": True, "timeout": "50m", "action": "close", "queue": "org-queue"},
    )
    bot.api("put", f"/v1/bots/{bot.id}/policy", {"timeout": "40m", "final_text": "bot"})
    bot.api("put", f"/v1/bots/{bot.id}/flows/sales/policy", {"timeout": "30m"})
    bot.api("put", f"/v1/bots/{bot.id}/flows/sales/nodes/plan/policy", {"timeout": "20m"})
    bot.says("oi")
    conv = bot.api("get", "/v1/conversations")[0]
    explained = bot.api("get", f"/v1/conversations/{conv['id']}/inactivity")
    assert explained["situation"] == "question"
    assert explained["policy"]["timeout"] == "20m"
    assert explained["sources"]["timeout"] == "node"
    assert explained["sources"]["final_text"] == "bot"
    assert explained["sources"]["action"] == "organization"
    assert explained["sources"]["reminders"] == "default"
    assert explained["stages_done"] == 0
    assert explained["next_stage"]["final"] is True
    due = datetime.fromisoformat(explained["next_stage"]["at"])
    assert due == datetime.fromisoformat(conv["last_activity_at"]) + timedelta(minutes=20)
    bot.wait(19.5)
    assert bot.api("get", "/v1/conversations")[0]["status"] == "bot"
    bot.wait(1)
    assert bot.api("get", "/v1/conversations")[0]["status"] == "closed"
    assert bot.heard()[-1] == "bot"
    bot.api("delete", f"/v1/bots/{bot.id}/flows/sales/nodes/plan/policy")
    bot.says("voltei")
    conv = next(c for c in bot.api("get", "/v1/conversations") if c["status"] == "bot")
    explained = bot.api("get", f"/v1/conversations/{conv['id']}/inactivity")
    assert (explained["policy"]["timeout"], explained["sources"]["timeout"]) == ("30m", "flow")


def test_a_fallback_flow_starts_and_says_its_first_node(bot: Bot) -> None:
    bot.api(
        "put",
        f"/v1/bots/{bot.id}/flows/sales/nodes/plan/policy",
        {"enabled": True, "timeout": "15m", "action": "fallback_flow", "fallback_flow": "rescue"},
    )
    bot.says("oi")
    bot.wait(16)
    assert bot.heard()[-2:] == ["Vamos recomeçar?", "Quer ver os planos? (sim/não)"]
    conv = bot.api("get", "/v1/conversations")[0]
    assert (conv["active_flow"], conv["active_node"]) == ("rescue", "r2")
    assert "fallback_by_timeout" in bot.log(conv["id"])


def test_the_legacy_default_hands_off_after_one_hour(bot: Bot) -> None:
    bot.says("oi")
    bot.wait(59)
    assert bot.api("get", "/v1/conversations")[0]["status"] == "bot"
    bot.wait(1.5)
    assert bot.heard()[-1] == LEGACY_MESSAGE["pt-BR"]
    conv = bot.api("get", "/v1/conversations")[0]
    assert conv["status"] == "handoff"
    assert bot.log(conv["id"]) == ["handoff_by_timeout"]
    queue = bot.api("get", "/v1/queues/default/conversations")
    assert [q["conversation_id"] for q in queue] == [conv["id"]]


def test_handoff_then_agent_side_inactivity_closes(bot: Bot) -> None:
    bot.api(
        "put",
        f"/v1/bots/{bot.id}/policy",
        {
            "enabled": True,
            "timeout": "30m",
            "action": "close",
            "final_text": "Até mais!",
            "applies_to": ["handoff"],
            "skip_if_waiting_for_agent": True,
        },
    )
    bot.api(
        "put",
        f"/v1/bots/{bot.id}/flows/sales/nodes/plan/policy",
        {
            "enabled": True,
            "timeout": "5m",
            "action": "handoff",
            "queue": "vendas",
            "applies_to": ["question"],
            "final_text": "Chamando um vendedor.",
        },
    )
    bot.says("oi")
    bot.wait(6)
    conv = bot.api("get", "/v1/conversations")[0]
    assert (conv["status"], bot.heard()[-1]) == ("handoff", "Chamando um vendedor.")
    assert [q["conversation_id"] for q in bot.api("get", "/v1/queues/vendas/conversations")] == [
        conv["id"]
    ]
    # The customer waits for an agent: nothing closes it, however long.
    bot.says("alô?")
    bot.wait(45)
    conv = bot.api("get", "/v1/conversations")[0]
    assert conv["status"] == "handoff"
    assert "timeout_skipped" in bot.log(conv["id"])
    # An agent answers; now the customer is the one who went quiet.
    bot.api("post", f"/v1/conversations/{conv['id']}/take", {"agent": "ana"})
    bot.api(
        "post", f"/v1/conversations/{conv['id']}/reply", {"agent": "ana", "text": "Oi! Sou a Ana."}
    )
    bot.drain()
    assert bot.heard()[-1] == "Oi! Sou a Ana."
    bot.wait(29)
    assert bot.api("get", "/v1/conversations")[0]["status"] == "handoff"
    bot.wait(1.5)
    conv = bot.api("get", "/v1/conversations")[0]
    assert (conv["status"], bot.heard()[-1]) == ("closed", "Até mais!")
    assert bot.log(conv["id"])[-1] == "closed_by_timeout"


def test_a_message_during_a_stage_prevents_the_close(
    bot: Bot, runtime: Runtime, clock: ManualClock
) -> None:
    bot.api(
        "put",
        f"/v1/bots/{bot.id}/flows/sales/nodes/plan/policy",
        {"enabled": True, "timeout": "10m", "action": "close", "final_text": "fim"},
    )
    bot.says("oi")
    clock.advance(timedelta(minutes=10))
    claimed = runtime.timers.claim_due(clock.now(), 10, timedelta(seconds=30))
    assert claimed
    bot.says("mensal")  # arrives while the close is being decided
    InlineExecutor(runtime).submit(claimed, clock.now())
    bot.drain()
    with runtime.sessions() as s:
        assert s.scalars(select(Conversation.status)).one() == "bot"
    assert "fim" not in bot.heard()
    assert bot.heard()[-1] == "Qual seu e-mail?"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/bots/{bot}/policy", {"timeout": "30s"}, "timeout"),
        (
            "/v1/bots/{bot}/policy",
            {"timeout": "10m", "reminders": [{"after": "15m"}]},
            "reminders[0].after",
        ),
        (
            "/v1/bots/{bot}/policy",
            {"action": "fallback_flow", "fallback_flow": "nope"},
            "fallback_flow",
        ),
        ("/v1/bots/{bot}/flows/sales/nodes/ghost/policy", {"timeout": "10m"}, "node"),
        (
            "/v1/bots/{bot}/flows/broken",
            {"nodes": [{"id": "a", "type": "message", "text": "x", "next": "zzz"}]},
            "nodes.a",
        ),
        (
            "/v1/bots/{bot}/flows/loop",
            {
                "nodes": [
                    {"id": "a", "type": "message", "text": "x", "next": "b"},
                    {"id": "b", "type": "message", "text": "y", "next": "a"},
                ]
            },
            "nodes.a",
        ),
    ],
)
def test_invalid_configuration_is_refused_precisely(
    bot: Bot, path: str, body: dict[str, Any], field: str
) -> None:
    r = bot.client.put(path.format(bot=bot.id), json=body, headers=bot.headers)
    assert r.status_code in (404, 422), r.text
    assert r.json()["field"] == field
