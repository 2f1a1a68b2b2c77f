"""Why a bot's work is skipped: deleted wins over disabled; a running bot has no reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reengage.domain.bot_state import BOT_DELETED, BOT_DISABLED, halted

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("disabled_at", "deleted_at", "reason"),
    [
        (None, None, None),
        (AT, None, BOT_DISABLED),
        (None, AT, BOT_DELETED),
        (AT, AT, BOT_DELETED),
    ],
)
def test_halted(
    disabled_at: datetime | None, deleted_at: datetime | None, reason: str | None
) -> None:
    assert halted(disabled_at, deleted_at) == reason
