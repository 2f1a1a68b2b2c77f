"""What-if replay of a bot's campaign draft over its contacts' real past activity.

Reads only: the bot's contacts and their user-message instants of the replayed days (plus
`WARMUP` before them, for the usual-hour profiles) from `inbound_message` (every user message
that says something, in every mode) and `activity_event` (every accepted event, embedded mode
only), the draft, the bot's timeout policy. Writes nothing, sends nothing. A bot with more than
`INLINE_CONTACTS` contacts is replayed as a background job whose progress can be read.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import union
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import ActivityRecord, Contact, InboundMessage
from reengage.domain import policy as pol
from reengage.domain import recovery as rec
from reengage.domain import replay as rp
from reengage.domain.activity import ChannelKind, EventType
from reengage.i18n import N_
from reengage.services import campaigns
from reengage.services.errors import InvalidInput, NotFound
from reengage.services.policies import Scope, get_policy
from reengage.services.tenancy import get_bot, scoped_columns

WARMUP = timedelta(days=28)  # activity before the replayed days that profiles learn from
INLINE_CONTACTS = 2000
CHUNK = 1000
# The platforms' rates the delivery pacer holds a bot to (messages/s); 0: not limited.
TELEGRAM_RATE, PAID_BROADCAST_RATE, WHATSAPP_RATE = 28.0, 950.0, 80.0


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    days: int
    compare: bool = True  # also replay the fixed-time and usual-hour variants side by side


def check_days(days: int) -> None:
    if not 1 <= days <= rp.MAX_DAYS:
        raise InvalidInput(N_("must be between 1 and {MAX_DAYS}"), "days", MAX_DAYS=rp.MAX_DAYS)


def platform_rate(channel: str, paid_broadcast: bool) -> float:
    if channel == ChannelKind.TELEGRAM.value:
        return PAID_BROADCAST_RATE if paid_broadcast else TELEGRAM_RATE
    return WHATSAPP_RATE if channel == ChannelKind.WHATSAPP.value else 0.0


def timeout_stages(session: Session, org_id: int, bot_id: int) -> tuple[timedelta, ...]:
    """When the bot's conversation timeout (organization and bot levels) fires its stages."""
    layers = []
    for scope in (Scope(pol.Level.BOT, bot_id), Scope(pol.Level.ORGANIZATION)):
        try:
            layers.append((scope.level, get_policy(session, org_id, scope)))
        except NotFound:
            continue
    policy = pol.resolve(layers, at_question=False)
    return tuple(s.after for s in pol.stages(policy)) if policy.enabled else ()


@dataclass(frozen=True, slots=True)
class Prepared:
    campaign: rec.Campaign
    settings: rp.ReplaySettings
    contacts: list[tuple[int, str, str | None, datetime | None, bool, bool]]


def prepare(session: Session, org_id: int, bot_id: int, days: int, now: datetime) -> Prepared:
    check_days(days)
    bot = get_bot(session, org_id, bot_id)
    row = campaigns.get_campaign(session, org_id, bot_id)
    try:
        campaign = rec.parse_campaign(row.draft)
    except rec.CampaignError as exc:  # pragma: no cover - drafts are validated
        raise InvalidInput(exc.message, exc.field) from exc
    settings = rp.ReplaySettings(
        start=now - timedelta(days=days),
        end=now,
        rate=platform_rate(bot.channel, bot.paid_broadcast),
        timeout_stages=timeout_stages(session, org_id, bot_id),
    )
    contacts = session.execute(
        scoped_columns(
            Contact,
            org_id,
            Contact.id,
            Contact.external_id,
            Contact.time_zone,
            Contact.paid_at,
            Contact.blocked_at.is_not(None),
            Contact.opted_out_at.is_not(None),
        )
        .where(Contact.bot_id == bot_id, Contact.external_id.not_in(row.exclusions or ()))
        .order_by(Contact.id)
    ).all()
    return Prepared(campaign, settings, [tuple(c) for c in contacts])


def activity(
    session: Session, org_id: int, bot_id: int, users: list[str], since: datetime, until: datetime
) -> dict[str, list[datetime]]:
    """The users' message instants in [since, until), from both logs, without duplicates."""
    inbound = scoped_columns(
        InboundMessage, org_id, InboundMessage.user_id, InboundMessage.occurred_at
    ).where(
        InboundMessage.bot_id == bot_id,
        InboundMessage.user_id.in_(users),
        InboundMessage.occurred_at >= since,
        InboundMessage.occurred_at < until,
    )
    events = scoped_columns(
        ActivityRecord, org_id, ActivityRecord.user_id, ActivityRecord.occurred_at
    ).where(
        ActivityRecord.bot_id == bot_id,
        ActivityRecord.type == EventType.USER_MESSAGE.value,
        ActivityRecord.user_id.in_(users),
        ActivityRecord.occurred_at >= since,
        ActivityRecord.occurred_at < until,
    )
    out: dict[str, set[datetime]] = defaultdict(set)
    for user_id, at in session.execute(union(inbound, events)):
        out[user_id].add(at)
    return {u: sorted(instants) for u, instants in out.items()}


Progress = Callable[[int, int], None]


def run(
    sessions: sessionmaker[Session],
    org_id: int,
    bot_id: int,
    request: ReplayRequest,
    now: datetime,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Replay the draft (and, with `compare`, its fixed-time and usual-hour variants) over the
    bot's contacts, a chunk of contacts at a time; read-only transactions throughout."""
    with sessions() as session:
        prepared = prepare(session, org_id, bot_id, request.days, now)
    campaign, settings = prepared.campaign, prepared.settings
    runs = {"draft": rp.Replay(campaign, settings)}
    if request.compare:
        runs["fixed"] = rp.Replay(rp.as_fixed(campaign), settings)
        runs["usual"] = rp.Replay(rp.as_usual(campaign), settings)
    total, done = len(prepared.contacts), 0
    for start in range(0, total, CHUNK):
        chunk = prepared.contacts[start : start + CHUNK]
        with sessions() as session:
            seen = activity(
                session,
                org_id,
                bot_id,
                [c[1] for c in chunk],
                settings.start - WARMUP,
                settings.end,
            )
        for contact_id, user_id, zone, paid_at, blocked, opted_out in chunk:
            history = rp.ContactHistory(
                contact_id, user_id, seen.get(user_id, []), zone, paid_at, blocked, opted_out
            )
            for replay in runs.values():
                replay.add(history)
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    results = {name: r.result() for name, r in runs.items()}
    out = result_json(results["draft"], settings)
    if request.compare:
        out["usual_vs_fixed"] = {
            "active_within_1h_fixed": round(results["fixed"].active_within_hour_share, 4),
            "active_within_1h_usual": round(results["usual"].active_within_hour_share, 4),
            "sends_fixed": results["fixed"].sends,
            "sends_usual": results["usual"].sends,
        }
    return out


def result_json(result: rp.ReplayResult, settings: rp.ReplaySettings) -> dict[str, Any]:
    return {
        "from": settings.start.isoformat(),
        "until": settings.end.isoformat(),
        "contacts": result.contacts,
        "contact_days": result.contact_days,
        "silences": result.silences,
        "episodes_started": result.episodes_started,
        "holdout": result.holdout,
        "not_started": result.not_started,
        "steps": [
            {
                "step": s.index,
                "sent": s.sent,
                "messages": s.messages,
                "returned_before": s.returned_before,
                "wasted": s.wasted,
                "timeout_collisions": s.collisions,
                "active_within_1h": s.active_within_hour,
                "from_profile": s.from_profile,
                "from_fallback": s.from_fallback,
            }
            for s in result.steps
        ],
        "sends_by_hour": result.sends_by_hour,
        "queue": {
            "rate_per_second": result.queue.rate,
            "peak_wait_seconds": result.queue.peak_wait_seconds,
            "peak_hour": result.queue.peak_hour,
            "peak_backlog": result.queue.peak_backlog,
        },
    }


@dataclass(slots=True)
class Job:
    id: str
    org_id: int
    bot_id: int
    status: str = "running"  # running / done / failed
    done: int = 0
    total: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "status": self.status,
            "progress": {"contacts_done": self.done, "contacts_total": self.total},
            "result": self.result,
            "error": self.error,
        }


@dataclass(slots=True)
class ReplayJobs:
    """Replays of this process: a small bot's is run before answering, a larger one's in a
    thread (one at a time per process), its state read by id."""

    jobs: dict[str, Job] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(1))
    keep: int = 100

    def start(
        self,
        sessions: sessionmaker[Session],
        org_id: int,
        bot_id: int,
        request: ReplayRequest,
        now: datetime,
    ) -> Job:
        with sessions() as session:
            prepare(session, org_id, bot_id, request.days, now)  # 4xx before any job
            count = len(
                session.execute(
                    scoped_columns(Contact, org_id, Contact.id).where(Contact.bot_id == bot_id)
                ).all()
            )
        job = Job(uuid.uuid4().hex, org_id, bot_id, total=count)
        with self.lock:
            self.jobs[job.id] = job
            while len(self.jobs) > self.keep:
                self.jobs.pop(next(iter(self.jobs)))

        def work() -> None:
            try:
                job.result = run(sessions, org_id, bot_id, request, now, self._progress(job))
                job.status = "done"
            except Exception as exc:  # reported on the job, never lost in a thread
                job.status, job.error = "failed", str(exc)

        def in_turn() -> None:
            with self.running:  # large replays one after another in this process
                work()

        if count <= INLINE_CONTACTS:
            work()  # a small bot's at once, not behind a large one
        else:
            threading.Thread(target=in_turn, name=f"replay-{job.id}", daemon=True).start()
        return job

    @staticmethod
    def _progress(job: Job) -> Progress:
        def update(done: int, total: int) -> None:
            job.done, job.total = done, total

        return update

    def get(self, org_id: int, bot_id: int, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or (job.org_id, job.bot_id) != (org_id, bot_id):
            raise NotFound(N_("replay {job_id} not found"), "job_id", job_id=job_id)
        return job


JOBS = ReplayJobs()
