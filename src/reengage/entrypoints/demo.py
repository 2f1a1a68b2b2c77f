"""`reengage demo`: the whole product in one process, on SQLite, with time accelerated."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import uvicorn
from sqlalchemy import select

from reengage.adapters.channels.simulator import SimulatorChannel
from reengage.adapters.db.migrate import upgrade
from reengage.adapters.db.models import Contact, Conversation, ConversationEvent, SimulatorMessage
from reengage.config import Settings
from reengage.domain.activity import ActivityEvent, ChannelKind, EventType
from reengage.domain.outbound import MessageKind, OutboundMessage, SendContext
from reengage.entrypoints.api.app import create_app
from reengage.entrypoints.scheduler.main import build_scheduler
from reengage.runtime import Runtime
from reengage.services.tenancy import create_bot, create_organization

THRESHOLD = timedelta(minutes=10)

# (user, minutes of simulated time at which the user writes): ana writes once and goes quiet;
# bruno keeps chatting for a while, so his timer keeps moving, then he goes quiet too.
LINES = [
    "Oi, quanto custa o plano anual?",
    "E tem desconto no Pix?",
    "Vou pensar...",
    "Posso pagar depois?",
    "Ok",
]
SCRIPT = {"ana": [0], "bruno": [0, 4, 8, 12, 16], "carla": [0, 3]}


def _say(clock_now: datetime, text: str) -> None:
    print(f"[{clock_now:%H:%M} sim] {text}", flush=True)


def _simulate(runtime: Runtime, org_id: int, bot_id: int, stop: threading.Event) -> None:
    channel = SimulatorChannel(runtime.sessions, org_id, bot_id)
    start = runtime.clock.now()
    plan = sorted((minute, user) for user, minutes in SCRIPT.items() for minute in minutes)
    for n, (minute, user) in enumerate(plan):
        at = start + timedelta(minutes=minute)
        while runtime.clock.now() < at:
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
                    text=LINES[n % len(LINES)],
                    created_at=now,
                )
            )
        channel.send(
            user, OutboundMessage(MessageKind.TEXT, "Anotado! Algo mais?"), SendContext(now)
        )
        events = [
            ActivityEvent(f"demo-{n}-in", EventType.USER_MESSAGE, bot_id, user, now),
            ActivityEvent(f"demo-{n}-out", EventType.BOT_MESSAGE, bot_id, user, now),
        ]
        runtime.record(org_id, events)
        _say(
            now, f"{user} wrote to the bot; their inactivity timer moves to {now + THRESHOLD:%H:%M}"
        )


def _report(runtime: Runtime, stop: threading.Event) -> None:
    seen = 0
    while not stop.wait(0.2):
        with runtime.sessions() as session:
            rows = session.execute(
                select(ConversationEvent, Contact.external_id)
                .join(Conversation, Conversation.id == ConversationEvent.conversation_id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(ConversationEvent.id > seen)
                .order_by(ConversationEvent.id)
            ).all()
        for event, user in rows:
            seen = event.id
            since = datetime.fromisoformat(str(event.detail.get("since")))
            _say(
                runtime.clock.now(),
                f"timer fired: {user} has been quiet since {since:%H:%M} -> {event.kind}",
            )


def run_demo(*, speed: float, port: int, duration: float, database: str) -> None:
    Path(database).unlink(missing_ok=True)
    settings = Settings(
        database_url=f"sqlite:///{database}",
        redis_url=None,
        broker_url=None,
        clock_speed=speed,
        scheduler_poll=timedelta(milliseconds=20),
    )
    upgrade(settings.database_url)
    runtime = Runtime.build(settings)
    now = runtime.clock.now()
    org = create_organization(runtime.sessions, "Demo", now)
    bot = create_bot(
        runtime.sessions,
        settings.secret_key.get_secret_value(),
        org.org_id,
        name="Demo bot",
        channel=ChannelKind.SIMULATOR,
        now=now,
        inactivity_threshold=THRESHOLD,
    )
    url = f"http://127.0.0.1:{port}"
    print(f"reengage demo: API {url}  (docs: {url}/docs)", flush=True)
    print(f"  API key:  {org.api_key}", flush=True)
    print(
        f"  bot id:   {bot.id} (simulator), inactivity threshold 10 min, time x{speed:g}",
        flush=True,
    )
    print(f"  chat page: {url}/simulator#key={org.api_key}&bot={bot.id}&user=ana", flush=True)
    print(
        f"  try: curl -H 'Authorization: Bearer {org.api_key}' {url}/v1/conversations", flush=True
    )
    stop = threading.Event()
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
