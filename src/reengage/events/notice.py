"""The operator told where they look: a manager bot message to each admin of the
organization, written in the transaction of what it tells (a subscription disabled) and sent
by the `manager_notice` timer, never twice: a notice is marked `sending` before its request
leaves, and only a failure that surely never reached Telegram puts it back to `pending`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import EventSubscription, ManagerAdmin, ManagerNotice
from reengage.adapters.db.session import insert_for
from reengage.domain import event as ev
from reengage.domain.outbound import Failed, MessageKind, OutboundMessage, SendContext, Sent
from reengage.domain.timer import Purpose, Timer, timer_key
from reengage.events.outbox import publish_on_commit
from reengage.i18n import LANGUAGES, N_, translate
from reengage.ports import Channel
from reengage.timers.handler import NOTHING, Outcome

log = structlog.get_logger(__name__)

# A notice Telegram surely never got (no connection, 429, 5xx) is tried again this often.
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=10)

DISABLED = N_(
    "⚠️ Events: subscription #{id} ({url}) was disabled. Every delivery failed for "
    "{hours} h (last error: {error}). Fix the receiver and enable it again "
    "(PATCH /v1/event-subscriptions/{id} with enabled=true); the failed deliveries can "
    "be sent again."
)


def notice_timer(notice_id: int, due_at: datetime) -> Timer:
    """The timer that sends one notice."""
    return Timer(
        timer_key(Purpose.MANAGER_NOTICE, str(notice_id)),
        Purpose.MANAGER_NOTICE,
        due_at,
        0,
        {"manager_notice_id": notice_id},
    )


def notify_admins(
    session: Session, org_id: int, dedup_key: str, texts: Mapping[str, str], now: datetime
) -> int:
    """A notice to each of the organization's manager admins in their language, once per
    admin and `dedup_key`, in the caller's transaction; how many were new. Their timers are
    published when the transaction commits."""
    admins = session.execute(
        select(ManagerAdmin.telegram_user_id, ManagerAdmin.language).where(
            ManagerAdmin.org_id == org_id
        )
    ).tuples()
    rows = [
        {
            "org_id": org_id,
            "telegram_user_id": user,
            "dedup_key": dedup_key,
            "text": texts.get(language) or texts["en"],
            "status": "pending",
            "attempts": 0,
            "next_at": now,
            "created_at": now,
        }
        for user, language in admins
    ]
    if not rows:
        log.warning("manager.notice.no_admin", org_id=org_id, dedup_key=dedup_key)
        return 0
    table = ManagerNotice.__table__
    made = [
        session.scalar(
            insert_for(session, table).values(row).on_conflict_do_nothing().returning(table.c.id)
        )
        for row in rows
    ]
    new = [i for i in made if i is not None]
    publish_on_commit(session, [notice_timer(i, now) for i in new])
    return len(new)


def notify_disabled(
    session: Session, sub: EventSubscription, error: str | None, now: datetime
) -> None:
    """Tell the organization's admins that this subscription was disabled for its failures."""
    hours = int(ev.DISABLE_AFTER.total_seconds() // 3600)
    texts = {
        language: translate(
            DISABLED, language, id=sub.id, url=sub.url, hours=hours, error=error or "-"
        )
        for language in LANGUAGES
    }
    stamp = int(sub.disabled_at.timestamp()) if sub.disabled_at else int(now.timestamp())
    notify_admins(session, sub.org_id, f"subscription_disabled:{sub.id}:{stamp}", texts, now)


@dataclass(frozen=True, slots=True)
class ManagerNoticeHandler:
    """The `manager_notice` timer: one message of the manager bot (None: no token set)."""

    sessions: sessionmaker[Session]
    channel: Callable[[], Channel | None]
    purpose: str = Purpose.MANAGER_NOTICE
    queue: str = "events"

    def handle(self, timer: Timer, now: datetime) -> Outcome:
        notice_id = int(timer.payload["manager_notice_id"] or 0)
        channel = self.channel()
        with self.sessions.begin() as session:
            row = session.get(ManagerNotice, notice_id, with_for_update=True)
            if row is None or row.status != "pending":
                return NOTHING
            if channel is None:
                row.status, row.last_error = "failed", "no manager bot token is set"
                log.error("manager.notice.no_token", notice_id=notice_id, org_id=row.org_id)
                return NOTHING
            # From here on the request may leave: a crash leaves it `sending`, never resent.
            row.status, row.attempts = "sending", row.attempts + 1
            chat, text, attempts = str(row.telegram_user_id), row.text, row.attempts
        outcome = channel.send(chat, OutboundMessage(MessageKind.TEXT, text), SendContext(now))
        with self.sessions.begin() as session:
            row = session.get_one(ManagerNotice, notice_id, with_for_update=True)
            if isinstance(outcome, Sent):
                row.status, row.sent_at, row.last_error = "sent", now, None
                log.info("manager.notice.sent", notice_id=notice_id, org_id=row.org_id)
                return NOTHING
            row.last_error = _why(outcome)[:300]
            if isinstance(outcome, Failed) and outcome.retryable and attempts < MAX_ATTEMPTS:
                wait = max(FIRST_RETRY * 2 ** (attempts - 1), _seconds(outcome.retry_after))
                row.status, row.next_at = "pending", now + wait
                return Outcome([notice_timer(notice_id, row.next_at)])
            row.status = "failed"
            log.error("manager.notice.failed", notice_id=notice_id, error=row.last_error)
            return NOTHING

    def pending(
        self, session: Session, due_before: datetime | None, after_id: int, limit: int
    ) -> list[tuple[int, Timer]]:
        """Notices still to send, as the timers that send them (rebuild and sweep)."""
        stmt = (
            select(ManagerNotice.id, ManagerNotice.next_at)
            .where(ManagerNotice.status == "pending", ManagerNotice.id > after_id)
            .order_by(ManagerNotice.id)
            .limit(limit)
        )
        if due_before is not None:
            stmt = stmt.where(ManagerNotice.next_at <= due_before)
        return [(i, notice_timer(i, at)) for i, at in session.execute(stmt).tuples()]


def _why(outcome: object) -> str:
    if isinstance(outcome, Failed):
        return f"{outcome.reason}: {outcome.detail}" if outcome.detail else outcome.reason
    return type(outcome).__name__.lower()


def _seconds(value: float | None) -> timedelta:
    return timedelta(seconds=value or 0)
