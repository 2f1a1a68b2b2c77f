"""Build the channel of a bot from its (decrypted) credentials."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.channels import telegram, webhook, whatsapp
from reengage.adapters.channels.simulator import SimulatorChannel
from reengage.adapters.channels.telegram import PAID_BROADCAST, TelegramChannel, TelegramLimits
from reengage.adapters.channels.webhook import WebhookChannel
from reengage.adapters.channels.whatsapp import WhatsAppChannel
from reengage.adapters.pacing import Pacer
from reengage.config import Settings
from reengage.domain.activity import ChannelKind
from reengage.ports import Channel, Clock

# What each channel kind needs in its credentials.
REQUIRED: dict[ChannelKind, tuple[str, ...]] = {
    ChannelKind.TELEGRAM: ("token",),
    ChannelKind.WHATSAPP: ("phone_number_id", "access_token", "app_secret", "verify_token"),
    ChannelKind.WEBHOOK: ("url", "secret"),
    ChannelKind.SIMULATOR: (),
}


def close_connections() -> None:
    """Close every channel's kept-alive HTTP connections (at shutdown, between tests)."""
    telegram.close_bots()
    whatsapp.close_clients()
    webhook.close_client()


def missing_credentials(kind: ChannelKind, credentials: dict[str, Any]) -> list[str]:
    return [name for name in REQUIRED[kind] if not credentials.get(name)]


def build_channel(
    *,
    kind: ChannelKind,
    org_id: int,
    bot_id: int,
    credentials: dict[str, Any],
    settings: Settings,
    sessions: sessionmaker[Session],
    clock: Clock,
    pacer: Pacer,
    paid_broadcast: bool = False,
) -> Channel:
    if kind is ChannelKind.TELEGRAM:
        return TelegramChannel(
            credentials["token"],
            bot_key=str(bot_id),
            clock=clock,
            pacer=pacer,
            api_base=settings.telegram_api_base,
            limits=PAID_BROADCAST if paid_broadcast else TelegramLimits(),
        )
    if kind is ChannelKind.WHATSAPP:
        return WhatsAppChannel(
            credentials["phone_number_id"],
            credentials["access_token"],
            pacer=pacer,
            api_base=settings.whatsapp_api_base,
            sleep=clock.sleep_real,
            bot_key=str(bot_id),
        )
    if kind is ChannelKind.WEBHOOK:
        return WebhookChannel(credentials["url"], credentials["secret"])
    return SimulatorChannel(sessions, org_id, bot_id)
