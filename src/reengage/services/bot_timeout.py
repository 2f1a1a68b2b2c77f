"""A bot's default inactivity timeout and final action (its bot-level policy), field by field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from reengage.domain import policy as pol
from reengage.services.errors import NotFound
from reengage.services.policies import Scope, get_policy, put_policy


def bot_layer(session: Session, org_id: int, bot_id: int) -> pol.PolicyLayer:
    """What the bot level sets (empty: every field comes from the organization or defaults)."""
    try:
        return get_policy(session, org_id, Scope(pol.Level.BOT, bot_id))
    except NotFound as exc:
        if exc.field != "scope":
            raise
        return pol.PolicyLayer()


def update_bot_layer(
    session: Session, org_id: int, bot_id: int, changes: dict[str, Any], now: datetime
) -> pol.PolicyLayer:
    """Change some fields of the bot-level policy, keeping the others; validated as the API's
    PUT is."""
    current = pol.layer_to_json(bot_layer(session, org_id, bot_id))
    layer, _ = put_policy(session, org_id, Scope(pol.Level.BOT, bot_id), current | changes, now)
    return layer
