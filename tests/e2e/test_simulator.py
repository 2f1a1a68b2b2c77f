"""The simulator channel's chat endpoints and page."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from reengage.adapters.channels.simulator import SimulatorChannel
from reengage.adapters.clock import ManualClock
from reengage.domain.activity import ChannelKind
from reengage.domain.inactivity import inactivity_key
from reengage.domain.outbound import MessageKind, OutboundMessage, SendContext, Sent
from reengage.runtime import Runtime
from tests.e2e.conftest import Tenant
from tests.factories import make_bot


def test_a_simulated_user_chats_with_the_bot(
    tenant: Callable[[str], Tenant], runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    t = tenant("A")
    bot = make_bot(runtime, t.org_id, channel=ChannelKind.SIMULATOR)
    r = t.post(f"/v1/simulator/{bot}/messages", {"chat_id": "ana", "text": "Oi!"})
    assert r.status_code == 201, r.text
    assert runtime.timers.get(inactivity_key(bot, "ana")) is not None
    sent = SimulatorChannel(runtime.sessions, t.org_id, bot).send(
        "ana", OutboundMessage(MessageKind.TEXT, "Olá, Ana!"), SendContext(clock.now())
    )
    assert isinstance(sent, Sent)
    SimulatorChannel(runtime.sessions, t.org_id, bot).delete(
        "ana", sent.message_id, clock.now(), clock.now()
    )
    chat = t.get(f"/v1/simulator/{bot}/messages", chat_id="ana").json()
    assert [(m["direction"], m["text"], m["deleted"]) for m in chat] == [
        ("in", "Oi!", False),
        ("out", "Olá, Ana!", True),
    ]
    assert (
        t.get(f"/v1/simulator/{bot}/messages", chat_id="ana", after=chat[0]["id"]).json()[0]["text"]
        == "Olá, Ana!"
    )
    assert "reengage · simulador" in client.get("/simulator").text


def test_only_simulator_bots_of_the_caller(
    tenant: Callable[[str], Tenant], runtime: Runtime
) -> None:
    a, b = tenant("A"), tenant("B")
    sim_of_b = make_bot(runtime, b.org_id, channel=ChannelKind.SIMULATOR)
    assert a.get(f"/v1/simulator/{sim_of_b}/messages", chat_id="x").status_code == 404
    r = a.post(f"/v1/simulator/{a.bot_id}/messages", {"chat_id": "x", "text": "hi"})
    assert (r.status_code, r.json()["field"]) == (422, "bot_id")  # a Telegram bot
    r = b.post(f"/v1/simulator/{sim_of_b}/messages", {"chat_id": "x", "text": ""})
    assert (r.status_code, r.json()["field"]) == (422, "text")
