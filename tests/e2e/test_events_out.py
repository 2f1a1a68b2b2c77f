"""Events out end to end: a local receiver that verifies every request with the
`standardwebhooks` library, the HTTP API, the Telegram fake and the manual clock."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from reengage.adapters.clock import ManualClock
from reengage.adapters.db import activity_store as db_activity_store
from reengage.adapters.db import subjects
from reengage.adapters.db.models import Conversation, EventDelivery, OutboundEvent
from reengage.entrypoints.api.app import create_app
from reengage.events import outbox, sender
from reengage.runtime import Runtime
from reengage.services import agents
from reengage.testing.server import RunningServer
from reengage.testing.telegram import FakeTelegram
from tests.e2e.harness import MODES, runtime_in_mode
from tests.e2e.test_timeouts import Bot

CHAT = 5550001


@dataclass
class Arrival:
    webhook_id: str
    body: bytes
    headers: dict[str, str]
    at: float  # real time
    payload: dict[str, Any] = field(default_factory=dict)


class Receiver:
    """An integrator's endpoint: verifies with the library, keeps each `webhook-id` once."""

    def __init__(self) -> None:
        self.secret = ""
        self.arrivals: list[Arrival] = []  # verified requests, duplicates included
        self.refused = 0
        self.accepted: dict[str, Arrival] = {}  # the first of each webhook-id
        self.gate: threading.Event | None = None  # when set: requests answered once it opens
        self.entered = threading.Event()  # a verified request arrived
        self._lock = threading.Lock()
        self._server: RunningServer | None = None
        self.port = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        headers = dict(request.headers)
        try:
            payload = standardwebhooks.Webhook(self.secret).verify(body, headers)
        except standardwebhooks.WebhookVerificationError:
            with self._lock:
                self.refused += 1
            await Response(status_code=400)(scope, receive, send)
            return
        arrival = Arrival(headers["webhook-id"], body, headers, time.time(), payload)
        with self._lock:
            self.arrivals.append(arrival)
            self.accepted.setdefault(arrival.webhook_id, arrival)
        self.entered.set()
        while self.gate is not None and not self.gate.is_set():
            await asyncio.sleep(0.01)
        await Response(status_code=204)(scope, receive, send)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/reengage"

    def up(self) -> None:
        self._server = RunningServer(self, port=self.port)
        self.port = self._server.port

    def down(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def types(self) -> list[str]:
        return [a.payload["type"] for a in self.accepted.values()]


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return runtime_in_mode(request, tmp_path, default_inactivity_threshold=timedelta(days=2))


@pytest.fixture
def bot(runtime: Runtime, fake_telegram: FakeTelegram, clock: ManualClock) -> Iterator[Bot]:
    with TestClient(create_app(runtime)) as client:
        yield Bot(runtime, client, fake_telegram, clock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.up()
    yield r
    r.down()


def subscribe(bot: Bot, receiver: Receiver, types: list[str]) -> dict[str, Any]:
    sub: dict[str, Any] = bot.call(
        "post", "/v1/event-subscriptions", {"url": receiver.url, "event_types": types}
    )
    receiver.secret = sub["secret"]
    return sub


QUICK_CLOSE = {
    "enabled": True,
    "timeout": "3m",
    "action": "close",
    "final_text": "Encerrando.",
    "reminders": [{"after": "1m", "text": "Ainda está aí?"}],
}


def test_a_handoff_reaches_the_receiver_verified_within_a_second(
    bot: Bot, receiver: Receiver
) -> None:
    subscribe(bot, receiver, ["conversation.handed_off"])
    bot.says("oi")
    bot.wait(59)
    assert receiver.arrivals == []
    decided = time.time()
    bot.wait(1.5)  # the legacy default hands off after one hour
    conv = bot.conversation()
    assert conv["status"] == "handoff"
    [arrival] = receiver.arrivals
    assert arrival.at - decided < 1.0
    payload = arrival.payload
    assert payload["type"] == "conversation.handed_off"
    assert payload["id"] == arrival.webhook_id
    assert payload["version"] == 1
    data = payload["data"]
    assert data["conversation"]["id"] == conv["id"]
    assert data["conversation"]["status"] == "handoff"
    assert data["conversation"]["queue"] == "default"
    assert data["contact"]["user_id"] == str(CHAT)
    assert data["reason"] == "handoff_by_timeout"
    assert data["bot_id"] == bot.id


def test_a_receiver_down_five_minutes_gets_every_event_once_and_in_order(
    bot: Bot, receiver: Receiver
) -> None:
    sub = subscribe(bot, receiver, ["conversation.*"])
    bot.api("put", f"/v1/bots/{bot.id}/policy", QUICK_CLOSE)
    bot.says("oi")
    receiver.down()
    bot.wait(5)  # the reminder (1 min) and the close (3 min) are decided while it is down
    assert bot.conversation()["status"] == "closed"
    receiver.up()
    bot.wait(30)
    with bot.runtime.sessions() as session:
        decided = session.execute(
            select(OutboundEvent.id, OutboundEvent.type).order_by(OutboundEvent.id)
        ).all()
    assert [t for _, t in decided] == ["conversation.reminder_sent", "conversation.closed"]
    # Every event arrived, exactly once per webhook-id, in the conversation's order.
    assert [a.webhook_id for a in receiver.arrivals] == [f"evt_{i}" for i, _ in decided]
    assert receiver.types() == ["conversation.reminder_sent", "conversation.closed"]
    deliveries = bot.api("get", f"/v1/event-subscriptions/{sub['id']}/deliveries")
    assert {d["status"] for d in deliveries} == {"delivered"}
    first = deliveries[-1]  # newest first: the reminder's is the last
    attempts = bot.api("get", f"/v1/event-deliveries/{first['id']}/attempts")
    assert [a["status_code"] for a in attempts][-1] == 204
    assert all(a["status_code"] is None and a["error"] for a in attempts[:-1])
    assert len(attempts) >= 5  # 5 s, 10 s, 20 s, ... apart: the 5 minutes are covered
    assert bot.api("get", f"/v1/event-subscriptions/{sub['id']}")["enabled"] is True


def test_a_worker_killed_mid_send_loses_no_event(bot: Bot, receiver: Receiver) -> None:
    subscribe(bot, receiver, ["*"])
    handler = bot.runtime.registry["event"]
    assert isinstance(handler, sender.EventHandler)
    bot.says("oi")
    bot.wait(59)
    # A worker claims the event's timer, sends it, and dies before recording the answer or
    # acknowledging the timer; its timer's lease runs out (30 s) and another worker takes it,
    # and sends it once the delivery's own lease (50 s for one request) is over.
    killed = KilledAfterSend(handler)
    bot.runtime.registry["event"] = killed
    bot.wait(2)
    assert killed.sent == 1
    assert len(receiver.arrivals) == 2  # at least once: the same event again...
    assert len({a.webhook_id for a in receiver.arrivals}) == 1  # ...with the same webhook-id
    assert receiver.types() == ["conversation.handed_off"]
    with bot.runtime.sessions() as session:
        assert session.scalars(select(EventDelivery.status)).all() == ["delivered"]


@dataclass
class KilledAfterSend:
    """A worker process that dies right after its request left: nothing recorded, no ack."""

    inner: sender.EventHandler
    sent: int = 0
    purpose: str = "event"
    queue: str = "timers"

    def handle(self, timer: Any, now: Any) -> Any:
        if self.sent:  # the next worker
            return self.inner.handle(timer, now)
        delivery_id = int(timer.payload["event_delivery_id"])
        ready = self.inner.take([delivery_id], now)[delivery_id]
        assert isinstance(ready, sender.Request)
        sender.post(self.inner.client, ready)
        self.sent += 1
        raise RuntimeError("killed")  # no answer recorded, no acknowledgement

    def pending(self, *args: Any) -> Any:
        return self.inner.pending(*args)


def test_a_delivery_two_workers_take_at_once_is_sent_once(bot: Bot, receiver: Receiver) -> None:
    subscribe(bot, receiver, ["*"])
    handler = bot.runtime.registry["event"]
    assert isinstance(handler, sender.EventHandler)
    caught = Caught()
    bot.runtime.registry["event"] = caught
    bot.says("oi")
    bot.wait(60.5)  # the hand-off is decided; its event's timer caught, not run
    [timer] = caught.timers
    # A worker sends it and waits for the receiver's answer; meanwhile the same delivery
    # reaches a second worker (as when the delivery before it in its order settles and
    # releases it while its first claim is still in flight).
    receiver.gate = threading.Event()
    now = bot.clock.now()
    first: list[Any] = []
    sending = threading.Thread(target=lambda: first.append(handler.handle(timer, now)))
    sending.start()
    try:
        assert receiver.entered.wait(10)
        second = handler.handle(timer, now)
    finally:
        receiver.gate.set()
        sending.join(10)
    assert len(receiver.arrivals) == 1
    lease_end = now + sender.sending_lease(1)
    assert [t.due_at for t in second.timers] == [lease_end]  # it looks again after the lease
    assert first == [sender.NOTHING]
    with bot.runtime.sessions() as session:
        [row] = session.scalars(select(EventDelivery)).all()
        assert (row.status, row.attempts) == ("delivered", 1)


@dataclass
class Caught:
    """A worker that keeps the event timers it gets, and runs none."""

    timers: list[Any] = field(default_factory=list)
    purpose: str = "event"
    queue: str = "timers"

    def handle(self, timer: Any, now: Any) -> Any:
        self.timers.append(timer)
        return sender.NOTHING

    def pending(self, *args: Any) -> Any:
        return []


def test_a_forged_or_replayed_request_is_refused_by_the_library(
    bot: Bot, receiver: Receiver
) -> None:
    sub = subscribe(bot, receiver, ["conversation.handed_off"])
    bot.says("oi")
    bot.wait(61)
    [real] = receiver.arrivals
    verify = standardwebhooks.Webhook(receiver.secret).verify
    assert verify(real.body, real.headers)["type"] == "conversation.handed_off"
    other = standardwebhooks.Webhook("whsec_" + "A" * 43)  # forged: another secret
    forged = dict(real.headers)
    forged["webhook-signature"] = other.sign(real.webhook_id, _at(real.headers), real.body.decode())
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verify(real.body, forged)
    with pytest.raises(standardwebhooks.WebhookVerificationError):  # tampered body
        verify(real.body.replace(b"handoff", b"closed"), real.headers)
    request = sender.Request("", real.webhook_id, real.body.decode(), [receiver.secret])
    replayed = sender.signed_headers(request, int(time.time()) - 600)  # 10 minutes later
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verify(real.body, replayed)
    # The receiver itself refuses a forged request.
    forged_headers = dict(real.headers) | {"webhook-signature": "v1,Zm9yZ2Vk"}
    r = httpx.post(receiver.url, content=real.body, headers=forged_headers)
    assert (r.status_code, receiver.refused) == (400, 1)
    rotated = bot.call("post", f"/v1/event-subscriptions/{sub['id']}/rotate-secret")
    # For the overlap both secrets verify: the receiver still has the old one.
    deliveries = bot.api("get", f"/v1/event-subscriptions/{sub['id']}/deliveries")
    bot.call("post", f"/v1/event-deliveries/{deliveries[0]['id']}/resend", status=202)
    bot.wait(0.1)
    again = receiver.arrivals[-1]
    assert len(receiver.arrivals) == 2
    assert again.webhook_id == real.webhook_id
    assert len(again.headers["webhook-signature"].split(" ")) == 2
    standardwebhooks.Webhook(rotated["secret"]).verify(again.body, again.headers)


def _at(headers: dict[str, str]) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)


def test_an_agent_close_and_its_event_are_written_together_or_not_at_all(
    bot: Bot, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscribe(bot, receiver, ["conversation.agent_closed"])
    bot.says("oi")
    bot.wait(61)  # the legacy default hands off after one hour
    conv = bot.conversation()
    assert conv["status"] == "handoff"
    # The process dies in the transaction that writes the close, right after the decision
    # and its event are in it: neither reaches the database.
    real = outbox.emit_agent_closed

    def dies_after(session: Session, conversation_ids: Any, now: Any) -> None:
        real(session, conversation_ids, now)
        if conversation_ids:
            raise RuntimeError("killed")

    with bot.runtime.sessions() as session:
        org_id = session.get_one(Conversation, conv["id"]).org_id
    monkeypatch.setattr(subjects, "emit_agent_closed", dies_after)
    monkeypatch.setattr(db_activity_store, "emit_agent_closed", dies_after)
    with pytest.raises(RuntimeError, match="killed"):
        agents.close(bot.runtime, org_id, conv["id"], bot.clock.now())
    assert _closes_and_events(bot, conv["id"]) == ("handoff", [])
    monkeypatch.undo()
    # The agent presses again; the write-behind writes what the hot state kept: both at once.
    agents.close(bot.runtime, org_id, conv["id"], bot.clock.now())
    bot.wait(2)
    status, events = _closes_and_events(bot, conv["id"])
    assert (status, events) == ("closed", ["conversation.agent_closed"])
    assert receiver.types() == ["conversation.agent_closed"]
    assert len(receiver.arrivals) == 1
    data = receiver.arrivals[0].payload["data"]
    assert (data["conversation"]["id"], data["conversation"]["status"]) == (conv["id"], "closed")
    assert data["reason"] == "agent"


def _closes_and_events(bot: Bot, conversation_id: int) -> tuple[str, list[str]]:
    with bot.runtime.sessions() as session:
        status = session.get_one(Conversation, conversation_id).status
        types = session.scalars(select(OutboundEvent.type).order_by(OutboundEvent.id)).all()
    return status, list(types)


def test_an_event_whose_timer_was_lost_after_the_commit_is_swept_back_once(
    bot: Bot, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscribe(bot, receiver, ["conversation.handed_off"])
    store = bot.runtime.timers
    real = store.schedule
    lost: list[str] = []

    def schedule(timers: Any) -> None:
        if not lost and timers and all(t.purpose == "event" for t in timers):
            lost.extend(t.key for t in timers)
            raise ConnectionError("the timer store went away")  # after the commit
        real(timers)

    monkeypatch.setattr(store, "schedule", schedule)
    bot.says("oi")
    bot.wait(60.2)  # the hand-off is decided; its event's timer is lost
    assert len(lost) == 1
    bot.wait(1)  # the sweep finds the pending delivery in the database
    assert receiver.types() == ["conversation.handed_off"]
    assert len(receiver.arrivals) == 1
    with bot.runtime.sessions() as session:
        assert session.scalars(select(EventDelivery.status)).all() == ["delivered"]
