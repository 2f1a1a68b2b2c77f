"""A bot's state: running, disabled, or deleted; what a stopped bot's work is skipped for."""

from __future__ import annotations

from datetime import datetime

BOT_DISABLED = "bot_disabled"
BOT_DELETED = "bot_deleted"


def halted(disabled_at: datetime | None, deleted_at: datetime | None) -> str | None:
    """Why nothing of a bot may act or be sent now (`bot_deleted`, `bot_disabled`), or None
    when it runs."""
    if deleted_at is not None:
        return BOT_DELETED
    if disabled_at is not None:
        return BOT_DISABLED
    return None
