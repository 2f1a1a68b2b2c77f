"""Disable, enable and delete a bot: what stops and what stays (docs/deploy.md).

Disabled: its webhooks and events are still accepted and recorded, but nothing acts on them
— its subjects' due timers do nothing, and a delivery already queued is skipped
(`bot_disabled`) when its turn comes, since the delivery path reads the bot's state when it
claims the row, right before the request. Enabling it puts back what came due meanwhile.

Deleted (soft): the row stays, with `deleted_at`, so the organization's history and results
keep their rows; its credentials are wiped, its running episodes end (`bot_deleted`), its
queued deliveries are skipped (`bot_deleted`), its subjects' timers are dropped, and its id
answers 404 everywhere (API, webhooks, console, manager bot, `bots list`). A Telegram bot
whose webhook reengage registered is then told to stop posting (`deleteWebhook`), after the
commit: were the process to die in between, Telegram would keep posting into 404s until it
gives up, nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.channels import telegram
from reengage.adapters.db.models import Bot, Conversation, Delivery, Episode
from reengage.domain import recovery as rec
from reengage.domain.activity import ChannelKind
from reengage.domain.bot_state import BOT_DELETED
from reengage.services.audit_log import record_change
from reengage.services.tenancy import Actor, live_bot, scoped, scoped_update
from reengage.silence.episodes import end_episode

if TYPE_CHECKING:
    from reengage.runtime import Runtime

log = structlog.get_logger(__name__)


def disable_bot(
    sessions: sessionmaker[Session], org_id: int, bot_id: int, now: datetime, actor: Actor = None
) -> Bot:
    """Stop a bot acting and sending; its messages are still recorded (idempotent)."""
    return _set_disabled(sessions, org_id, bot_id, now, actor, disabled=True)


def enable_bot(
    sessions: sessionmaker[Session],
    org_id: int,
    bot_id: int,
    now: datetime,
    actor: Actor = None,
    restore: Callable[[datetime], int] | None = None,
) -> Bot:
    """Let a disabled bot act again. `restore(now)` puts back the timers that came due while
    it was disabled (the scheduler's sweep does it too, within its interval)."""
    bot = _set_disabled(sessions, org_id, bot_id, now, actor, disabled=False)
    if restore is not None:
        restored = restore(now)
        log.info("bot.enabled", bot_id=bot_id, timers_restored=restored)
    return bot


def delete_bot(
    sessions: sessionmaker[Session], org_id: int, bot_id: int, now: datetime, actor: Actor = None
) -> None:
    """Delete a bot (soft): its history stays, everything that would run for it stops."""
    with sessions.begin() as session:
        bot = live_bot(session, org_id, bot_id, for_update=True)
        bot.deleted_at, bot.credentials = now, None
        bot.disabled_at = bot.disabled_at or now
        ended = _end_episodes(session, bot, now)
        cancelled = session.execute(
            scoped_update(
                Delivery, org_id, Delivery.bot_id == bot.id, Delivery.status == "scheduled"
            ).values(status="skipped", reason=BOT_DELETED, finished_at=now)
        ).rowcount  # type: ignore[attr-defined]
        # Their timers become inert: the handlers skip a deleted bot's subjects, and nothing
        # is left for the rebuild to put back.
        session.execute(
            scoped_update(
                Conversation,
                org_id,
                Conversation.bot_id == bot.id,
                Conversation.inactivity_due_at.is_not(None),
            ).values(inactivity_due_at=None)
        )
        if actor is not None:
            who, at = actor
            record_change(session, org_id, who, "bot.delete", f"bot {bot_id}", at)
    log.info("bot.deleted", bot_id=bot_id, episodes_ended=ended, deliveries_cancelled=cancelled)


def delete_bot_and_webhook(
    runtime: Runtime, org_id: int, bot_id: int, actor: Actor = None
) -> str | None:
    """`delete_bot`, then `deleteWebhook` for a Telegram bot whose webhook reengage set (its
    token is wiped by the delete: read first). Returns why Telegram did not confirm, if it
    did not: the bot is deleted all the same, its webhook's updates answered 404."""
    with runtime.sessions() as session:
        bot = live_bot(session, org_id, bot_id)
        credentials = runtime.credentials.of(bot.id, bot.credentials)
        telegram_webhook = bot.channel == ChannelKind.TELEGRAM.value
    delete_bot(runtime.sessions, org_id, bot_id, runtime.clock.now(), actor)
    token = credentials.get("token")
    if not (telegram_webhook and token and credentials.get("webhook_secret")):
        return None
    refused = telegram.delete_webhook(str(token), runtime.settings.telegram_api_base)
    if refused is None:
        log.info("bot.webhook_deleted", bot_id=bot_id)
    else:
        log.warning("bot.webhook_not_deleted", bot_id=bot_id, reason=refused)
    return refused


def _set_disabled(
    sessions: sessionmaker[Session],
    org_id: int,
    bot_id: int,
    now: datetime,
    actor: Actor,
    *,
    disabled: bool,
) -> Bot:
    with sessions.begin() as session:
        bot = live_bot(session, org_id, bot_id, for_update=True)
        was = bot.disabled_at is not None
        if was != disabled:
            bot.disabled_at = now if disabled else None
            if actor is not None:
                who, at = actor
                action = "bot.disable" if disabled else "bot.enable"
                record_change(
                    session,
                    org_id,
                    who,
                    action,
                    f"bot {bot_id}",
                    at,
                    before={"disabled": was},
                    after={"disabled": disabled},
                )
        session.flush()
        session.expunge(bot)
        return bot


def _end_episodes(session: Session, bot: Bot, now: datetime) -> int:
    running = session.scalars(
        scoped(Episode, bot.org_id, Episode.bot_id == bot.id, Episode.status == "running")
        .order_by(Episode.id)
        .with_for_update()
    ).all()
    for episode in running:
        end_episode(session, episode, rec.EndEpisode("stopped", BOT_DELETED), now)
    return len(running)
