"""Bots: the channels an organization's conversations happen on."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter

from reengage.adapters.channels.factory import missing_credentials
from reengage.adapters.db.models import Bot
from reengage.domain.activity import ChannelKind
from reengage.entrypoints.api.deps import Actor, OrgId, RuntimeDep
from reengage.entrypoints.api.schemas import (
    BotIn,
    BotOut,
    BotUpdateIn,
    CredentialsIn,
    ErrorOut,
    Id,
    TokenIn,
)
from reengage.i18n import N_
from reengage.services import bot_lifecycle, tenancy
from reengage.services.audit_log import record_change
from reengage.services.errors import InvalidInput
from reengage.services.webhook_setup import register_telegram_webhook
from reengage.timers.rebuild import rebuild_timers

bots_router = APIRouter(prefix="/v1/bots", tags=["bots"], responses={401: {"model": ErrorOut}})


def bot_out(bot: Bot) -> BotOut:
    return BotOut(
        id=bot.id,
        name=bot.name,
        channel=ChannelKind(bot.channel),
        has_credentials=bot.credentials is not None,
        inactivity_threshold_seconds=bot.inactivity_threshold_s,
        paid_broadcast=bot.paid_broadcast,
        created_at=bot.created_at,
        disabled=bot.disabled_at is not None,
    )


@bots_router.post("", response_model=BotOut, status_code=201)
def create_bot(runtime: RuntimeDep, org_id: OrgId, actor: Actor, body: BotIn) -> BotOut:
    """Register a bot. Credentials are encrypted at rest and never returned."""
    missing = missing_credentials(body.channel, body.credentials or {})
    if missing:
        raise InvalidInput(
            N_("{channel} bots need credentials.{name}"),
            f"credentials.{missing[0]}",
            channel=body.channel.value,
            name=missing[0],
        )
    seconds = body.inactivity_threshold_seconds
    bot = tenancy.create_bot(
        runtime.sessions,
        runtime.credentials,
        org_id,
        name=body.name,
        channel=body.channel,
        now=runtime.clock.now(),
        credentials=body.credentials,
        inactivity_threshold=None if seconds is None else timedelta(seconds=seconds),
        paid_broadcast=body.paid_broadcast,
        actor=actor,
    )
    return bot_out(bot)


@bots_router.get("", response_model=list[BotOut])
def list_bots(runtime: RuntimeDep, org_id: OrgId) -> list[BotOut]:
    """The organization's bots."""
    with runtime.sessions() as session:
        return [bot_out(b) for b in tenancy.list_bots(session, org_id)]


@bots_router.get("/{bot_id}", response_model=BotOut, responses={404: {"model": ErrorOut}})
def get_bot(runtime: RuntimeDep, org_id: OrgId, bot_id: Id) -> BotOut:
    """One bot of the organization."""
    with runtime.sessions() as session:
        return bot_out(tenancy.get_bot(session, org_id, bot_id))


@bots_router.put(
    "/{bot_id}/credentials",
    response_model=BotOut,
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def replace_credentials(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, body: CredentialsIn
) -> BotOut:
    """Replace a bot's credentials, whole (after revoking a token, say). Every send from the
    next one on uses them; a Telegram bot then needs its webhook registered again."""
    bot = tenancy.replace_credentials(
        runtime.sessions,
        runtime.credentials,
        org_id,
        bot_id,
        body.credentials,
        actor=(actor, runtime.clock.now()),
    )
    return bot_out(bot)


@bots_router.patch(
    "/{bot_id}",
    response_model=BotOut,
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def update_bot(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, body: BotUpdateIn
) -> BotOut:
    """Rename a bot or change its inactivity threshold (`null`: the default). A new threshold
    applies from each conversation's next event on; timers already armed keep their time."""
    given = body.model_fields_set
    if not given:
        raise InvalidInput(N_("nothing to change: give name or inactivity_threshold_seconds"))
    if "name" in given and body.name is None:
        raise InvalidInput(N_("name cannot be null"), "name")
    seconds = body.inactivity_threshold_seconds
    bot = tenancy.update_bot(
        runtime.sessions,
        org_id,
        bot_id,
        name=body.name,
        inactivity_threshold=(
            tenancy.UNSET
            if "inactivity_threshold_seconds" not in given
            else None
            if seconds is None
            else timedelta(seconds=seconds)
        ),
        actor=(actor, runtime.clock.now()),
    )
    return bot_out(bot)


@bots_router.put(
    "/{bot_id}/token",
    response_model=BotOut,
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def rotate_token(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id, body: TokenIn
) -> BotOut:
    """Replace the bot's platform token (Telegram's bot token, WhatsApp's access token) and
    keep its other credentials. Every send from the next one on uses it; a Telegram bot then
    needs its webhook registered again (`POST /v1/bots/{id}/webhook`)."""
    now = runtime.clock.now()
    bot = tenancy.rotate_token(
        runtime.sessions, runtime.credentials, org_id, bot_id, body.token, (actor, now)
    )
    return bot_out(bot)


@bots_router.post(
    "/{bot_id}/webhook",
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def register_webhook(
    runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id
) -> dict[str, str]:
    """Register the Telegram webhook of a bot with a freshly generated secret token."""
    settings = runtime.settings
    url = register_telegram_webhook(
        runtime.sessions,
        runtime.credentials,
        org_id,
        bot_id,
        settings.public_url,
        settings.telegram_api_base,
    )
    with runtime.sessions.begin() as session:
        record_change(
            session,
            org_id,
            actor,
            "bot.webhook",
            f"bot {bot_id}",
            runtime.clock.now(),
            after={"url": url},
        )
    return {"url": url}


@bots_router.post("/{bot_id}/disable", response_model=BotOut, responses={404: {"model": ErrorOut}})
def disable_bot(runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id) -> BotOut:
    """Stop a bot without losing anything. Its webhooks are still answered 200 and its
    messages and events recorded, but nothing acts on them: its conversations' timers that
    come due do nothing, and a message already queued is skipped (reason `bot_disabled`)
    instead of sent. Running episodes stay running, paused. Idempotent."""
    now = runtime.clock.now()
    return bot_out(bot_lifecycle.disable_bot(runtime.sessions, org_id, bot_id, now, (actor, now)))


@bots_router.post("/{bot_id}/enable", response_model=BotOut, responses={404: {"model": ErrorOut}})
def enable_bot(runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id) -> BotOut:
    """Let a disabled bot act again: what came due while it was disabled runs now (a timeout,
    an episode's step), judged on what happened meanwhile (a user who wrote in between ends
    their episode as returned). Messages skipped while it was disabled are not sent again."""
    now = runtime.clock.now()

    def restore(at: datetime) -> int:
        return rebuild_timers(runtime.sessions, runtime.timers, runtime.registry, at)

    bot = bot_lifecycle.enable_bot(runtime.sessions, org_id, bot_id, now, (actor, now), restore)
    return bot_out(bot)


@bots_router.delete("/{bot_id}", status_code=204, responses={404: {"model": ErrorOut}})
def delete_bot(runtime: RuntimeDep, org_id: OrgId, actor: Actor, bot_id: Id) -> None:
    """Delete a bot. Its running episodes end (reason `bot_deleted`), its queued messages are
    skipped (`bot_deleted`), its conversations' timers are dropped and its credentials
    wiped; its id then answers 404 everywhere, webhooks included. Its history stays: the
    conversations, deliveries and episodes remain in the organization's results."""
    now = runtime.clock.now()
    bot_lifecycle.delete_bot_and_webhook(runtime, org_id, bot_id, (actor, now))
