"""Register a bot's inbound webhook with its platform."""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.channels.telegram import WebhookRefused, set_webhook
from reengage.adapters.crypto import Credentials
from reengage.domain.activity import ChannelKind
from reengage.i18n import N_
from reengage.services.errors import InvalidInput
from reengage.services.tenancy import get_bot


def register_telegram_webhook(
    sessions: sessionmaker[Session],
    credentials_of: Credentials,
    org_id: int,
    bot_id: int,
    public_url: str,
    api_base: str | None = None,
) -> str:
    """Generate a fresh secret token, call `setWebhook`, then store the secret; return the URL."""
    with sessions() as session:
        bot = get_bot(session, org_id, bot_id)
        if bot.channel != ChannelKind.TELEGRAM.value:
            raise InvalidInput(N_("only Telegram bots register a webhook this way"), "bot_id")
        credentials = credentials_of.of(bot.id, bot.credentials)
    token = credentials.get("token")
    if not token:
        raise InvalidInput(N_("the bot has no token"), "credentials.token")
    url = f"{public_url.rstrip('/')}/webhooks/telegram/{bot_id}"
    secret = secrets.token_urlsafe(32)  # 1-256 chars of A-Z, a-z, 0-9, _ and -
    # Until Telegram confirms, updates keep arriving with the old secret: store after.
    try:
        set_webhook(token, url, secret, api_base)
    except WebhookRefused as exc:
        raise InvalidInput(N_("Telegram refused the webhook: {exc}"), "webhook", exc=exc) from exc
    with sessions.begin() as session:
        bot = get_bot(session, org_id, bot_id)
        bot.credentials = credentials_of.encrypt(credentials | {"webhook_secret": secret})
    return url
