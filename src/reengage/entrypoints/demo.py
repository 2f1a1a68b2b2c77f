"""`reengage demo`: the whole product in one process, on SQLite, with time accelerated.

A simulator bot asks its users a question. One answers everything, one answers late, one
goes quiet: the reminder and the close arrive on their own, visibly, in the console and in
the simulator's chat page.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import uvicorn
from sqlalchemy import select

from reengage.adapters.db.migrate import upgrade
from reengage.adapters.db.models import (
    Bot,
    Contact,
    Conversation,
    ConversationEvent,
    SimulatorMessage,
)
from reengage.config import Settings
from reengage.domain.activity import ActivityEvent, ChannelKind, EventType, Inbound
from reengage.domain.console_access import Role
from reengage.domain.policy import Level
from reengage.entrypoints.api.app import create_app
from reengage.entrypoints.scheduler.main import build_scheduler
from reengage.runtime import Runtime
from reengage.services import campaigns
from reengage.services.console_users import create_user
from reengage.services.flows import put_flow
from reengage.services.policies import Scope, put_policy
from reengage.services.tenancy import create_bot, create_organization

DEMO_OWNER = "owner@demo.example"
FLOW = {
    "start": "hello",
    "nodes": [
        {
            "id": "hello",
            "type": "message",
            "text": "Olá! Eu sou o bot de demonstração.",
            "next": "plan",
        },
        {
            "id": "plan",
            "type": "question",
            "text": "Qual plano te interessa? (mensal/anual)",
            "var": "plan",
            "choices": ["mensal", "anual"],
            "retry_text": "Responda mensal ou anual 🙂",
            "next": "email",
        },
        {
            "id": "email",
            "type": "question",
            "text": "Perfeito! Qual o seu e-mail?",
            "var": "email",
            "next": "done",
        },
        {
            "id": "done",
            "type": "close",
            "text": "Obrigado! Um consultor vai escrever para {email}.",
        },
    ],
}
POLICY = {
    "enabled": True,
    "timeout": "5m",
    "action": "close",
    "reminders": [{"after": "2m", "text": "Ainda está aí? Estou aguardando 🙂"}],
    "final_text": "Vou encerrar por enquanto. É só escrever quando quiser continuar.",
}
# The bot's recovery campaign: whoever stays quiet 3 minutes gets a nudge 2 minutes later and
# a last call 10 minutes after that (the results page fills within a minute at x60).
CAMPAIGN = {
    "time_zone": "America/Sao_Paulo",
    "threshold": "3m",
    "steps": [
        {
            "schedule": "2m",
            "blocks": [{"kind": "text", "text": "Oi! Ainda quer ver os planos? 🙂"}],
        },
        {
            "schedule": "10m",
            "blocks": [{"kind": "text", "text": "Última chamada: 10% no plano anual hoje."}],
        },
    ],
}
# (simulated minute, user, text): bruno answers everything, each answer a minute after the
# question (his second reminder would fall due at minute 3: an answer then would race it),
# carla answers the first question after the reminder and then goes quiet, ana never
# answers, davi comes back after the campaign's nudge.
SCRIPT = [
    (0, "ana", "oi"),
    (0, "bruno", "oi"),
    (0, "carla", "oi"),
    (0, "davi", "oi"),
    (1, "bruno", "anual"),
    (2, "bruno", "bruno@exemplo.com"),
    (3, "carla", "mensal"),
    (20, "davi", "voltei! quero o anual"),
]


def _say(now: datetime, text: str) -> None:
    print(f"[{now:%H:%M} sim] {text}", flush=True)


def _simulate(runtime: Runtime, org_id: int, bot_id: int, stop: threading.Event) -> None:
    start = runtime.clock.now()
    for n, (minute, user, text) in enumerate(SCRIPT):
        while runtime.clock.now() < start + timedelta(minutes=minute):
            if stop.wait(0.02):
                return
        now = runtime.clock.now()
        with runtime.sessions.begin() as session:
            session.add(
                SimulatorMessage(
                    org_id=org_id,
                    bot_id=bot_id,
                    chat_id=user,
                    direction="in",
                    kind="text",
                    text=text,
                    created_at=now,
                )
            )
        said = Inbound(text)
        runtime.record(
            org_id,
            [ActivityEvent(f"demo-{n}", EventType.USER_MESSAGE, bot_id, user, now, None, said)],
        )
        _say(now, f"{user} -> bot: {text}")


def _report(runtime: Runtime, stop: threading.Event) -> None:
    """Print what the bot says and what reengage decides, as it happens."""
    seen_message = seen_event = 0
    while not stop.wait(0.1):
        with runtime.sessions() as session:
            said = session.scalars(
                select(SimulatorMessage)
                .where(SimulatorMessage.id > seen_message, SimulatorMessage.direction == "out")
                .order_by(SimulatorMessage.id)
            ).all()
            decided = session.execute(
                select(ConversationEvent, Contact.external_id)
                .join(Conversation, Conversation.id == ConversationEvent.conversation_id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(
                    ConversationEvent.id > seen_event,
                    ConversationEvent.kind.in_(
                        [
                            "reminder_sent",
                            "reminder_skipped",
                            "closed_by_timeout",
                            "handoff_by_timeout",
                            "inactivity_detected",
                        ]
                    ),
                )
                .order_by(ConversationEvent.id)
            ).all()
        now = runtime.clock.now()
        for m in said:
            seen_message = m.id
            _say(now, f"bot -> {m.chat_id}: {m.text}")
        for event, user in decided:
            seen_event = event.id
            why = f" ({event.reason})" if event.reason and event.reason != event.kind else ""
            _say(now, f"** {user}: {event.kind}{why} **")


def run_demo(*, speed: float, port: int, duration: float, database: str) -> None:
    Path(database).unlink(missing_ok=True)
    settings = Settings(
        database_url=f"sqlite:///{database}",
        redis_url=None,
        broker_url=None,
        clock_speed=speed,
        scheduler_poll=timedelta(milliseconds=20),
        # Time runs fast in the demo: a console login must outlast a real afternoon.
        console_session_ttl=timedelta(days=3650),
    )
    upgrade(settings.database_url)
    runtime = Runtime.build(settings)
    now = runtime.clock.now()
    org = create_organization(runtime.sessions, "Demo", now)
    bot = create_bot(
        runtime.sessions,
        runtime.credentials,
        org.org_id,
        name="Demo bot",
        channel=ChannelKind.SIMULATOR,
        now=now,
    )
    password = secrets.token_urlsafe(12)  # a new demo database each run, a new password too
    with runtime.sessions.begin() as session:
        create_user(session, org.org_id, DEMO_OWNER, password, Role.OWNER, now)
        put_flow(session, org.org_id, bot.id, "atendimento", FLOW, now)
        for node in ("plan", "email"):
            put_policy(
                session, org.org_id, Scope(Level.NODE, bot.id, "atendimento", node), POLICY, now
            )
        campaigns.put_draft(session, org.org_id, bot.id, CAMPAIGN, now)
        campaigns.publish(session, org.org_id, bot.id, now)
        campaigns.set_enabled(session, org.org_id, bot.id, True, now)
    url = f"http://127.0.0.1:{port}"
    print(f"reengage demo: API {url}  (docs: {url}/docs)", flush=True)
    print(f"  API key:  {org.api_key}", flush=True)
    print(
        f"  bot id:   {bot.id} (simulator); at each question: reminder after 2 min, close "
        f"after 5 min; time x{speed:g}",
        flush=True,
    )
    print(f"  chat page: {url}/simulator#key={org.api_key}&bot={bot.id}&user=ana", flush=True)
    print(f"  console:  {url}/console/  login: {DEMO_OWNER} / {password}", flush=True)
    print(
        f"  campaign: recovery after 3 min of silence, steps +2m and +10m; results: "
        f"{url}/console/bots/{bot.id}/campaign/results",
        flush=True,
    )
    stop = threading.Event()
    with runtime.sessions.begin() as session:
        session.get_one(Bot, bot.id).entry_flow = "atendimento"
    scheduler = build_scheduler(settings, runtime)
    for target, args in (
        (scheduler.run, (stop,)),
        (_simulate, (runtime, org.org_id, bot.id, stop)),
        (_report, (runtime, stop)),
    ):
        threading.Thread(target=target, args=args, daemon=True).start()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    if duration > 0:
        threading.Thread(target=_stop_after, args=(server, stop, duration), daemon=True).start()
    try:
        server.run()
    finally:
        stop.set()
        runtime.close()


def _stop_after(server: uvicorn.Server, stop: threading.Event, seconds: float) -> None:
    time.sleep(seconds)
    stop.set()
    server.should_exit = True
