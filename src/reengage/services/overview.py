"""The console's overview: per bot, what is happening now. A handful of set-based queries for
the whole organization (one per figure, grouped by bot), whatever its number of bots."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from sqlalchemy import case, func
from sqlalchemy.orm import Session

from reengage.adapters.db.models import Bot, Conversation, Delivery, Episode
from reengage.services.tenancy import list_bots, scoped_columns


@dataclass(slots=True)
class BotOverview:
    bot_id: int
    name: str
    channel: str
    active_now: int = 0  # open conversations with a message within the bot's threshold
    episodes_running: int = 0
    sent_today: int = 0  # since 00:00 UTC
    # (status, reason) -> deliveries failed or skipped since 00:00 UTC
    problems: dict[tuple[str, str], int] = field(default_factory=dict)
    oldest_due_at: datetime | None = None  # the longest-overdue timer, None when none is late


def bot_overview(
    session: Session, org_id: int, now: datetime, default_threshold: timedelta
) -> list[BotOverview]:
    bots = list_bots(session, org_id)
    rows = {b.id: BotOverview(b.id, b.name, b.channel) for b in bots}
    if not rows:
        return []
    for bot_id, count in _active(session, org_id, bots, now, default_threshold):
        rows[bot_id].active_now = count
    running = scoped_columns(Episode, org_id, Episode.bot_id, func.count())
    for bot_id, count in session.execute(
        running.where(Episode.status == "running").group_by(Episode.bot_id)
    ):
        _row(rows, bot_id).episodes_running = count
    today = datetime.combine(now.date(), time(), now.tzinfo)
    sent = scoped_columns(Delivery, org_id, Delivery.bot_id, func.count())
    for bot_id, count in session.execute(
        sent.where(Delivery.status == "sent", Delivery.sent_at >= today).group_by(Delivery.bot_id)
    ):
        _row(rows, bot_id).sent_today = count
    for bot_id, key, count in _problems(session, org_id, today):
        _row(rows, bot_id).problems[key] = count
    for bot_id, due in _oldest_due(session, org_id, now):
        row = _row(rows, bot_id)
        row.oldest_due_at = due if row.oldest_due_at is None else min(due, row.oldest_due_at)
    return [rows[b.id] for b in bots]


def _row(rows: dict[int, BotOverview], bot_id: int) -> BotOverview:
    return rows.get(bot_id) or BotOverview(bot_id, "?", "?")  # a bot deleted meanwhile


def _active(
    session: Session, org_id: int, bots: list[Bot], now: datetime, default: timedelta
) -> list[tuple[int, int]]:
    # Each bot has its own threshold: one CASE gives every row its bot's cutoff.
    cutoffs = {
        b.id: now
        - (timedelta(seconds=b.inactivity_threshold_s) if b.inactivity_threshold_s else default)
        for b in bots
    }
    cutoff = case(cutoffs, value=Conversation.bot_id, else_=now - default)
    stmt = scoped_columns(Conversation, org_id, Conversation.bot_id, func.count()).where(
        Conversation.status != "closed", Conversation.last_message_at >= cutoff
    )
    return [(b, c) for b, c in session.execute(stmt.group_by(Conversation.bot_id))]


def _problems(
    session: Session, org_id: int, since: datetime
) -> list[tuple[int, tuple[str, str], int]]:
    stmt = scoped_columns(
        Delivery, org_id, Delivery.bot_id, Delivery.status, Delivery.reason, func.count()
    ).where(Delivery.status.in_(("failed", "skipped")), Delivery.finished_at >= since)
    grouped = stmt.group_by(Delivery.bot_id, Delivery.status, Delivery.reason)
    return [(b, (s, r or "-"), c) for b, s, r, c in session.execute(grouped)]


def _oldest_due(session: Session, org_id: int, now: datetime) -> list[tuple[int, datetime]]:
    """Per bot, the earliest deadline already passed: a conversation's silence timer, a
    recovery step or a delivery waiting for its turn."""
    found: dict[int, datetime] = {}
    queries = (
        scoped_columns(
            Conversation, org_id, Conversation.bot_id, func.min(Conversation.inactivity_due_at)
        )
        .where(Conversation.inactivity_due_at <= now)
        .group_by(Conversation.bot_id),
        scoped_columns(Episode, org_id, Episode.bot_id, func.min(Episode.next_due_at))
        .where(Episode.status == "running", Episode.next_due_at <= now)
        .group_by(Episode.bot_id),
        scoped_columns(Delivery, org_id, Delivery.bot_id, func.min(Delivery.scheduled_at))
        .where(Delivery.status == "scheduled", Delivery.scheduled_at <= now)
        .group_by(Delivery.bot_id),
    )
    per_bot: dict[int, list[datetime]] = defaultdict(list)
    for stmt in queries:
        for bot_id, due in session.execute(stmt):
            if due is not None:
                per_bot[bot_id].append(due)
    for bot_id, dues in per_bot.items():
        found[bot_id] = min(dues)
    return list(found.items())
