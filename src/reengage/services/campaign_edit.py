"""Edit a campaign draft one change at a time (the manager bot's and the API's fine edits)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from reengage.adapters.db.models import Campaign
from reengage.domain.campaign_draft import Draft
from reengage.services import campaigns
from reengage.services.errors import NotFound
from reengage.services.tenancy import get_bot


def current_draft(session: Session, org_id: int, bot_id: int) -> dict[str, Any]:
    """The bot's draft; an empty one (every default) when it has no campaign yet."""
    get_bot(session, org_id, bot_id)
    try:
        return campaigns.draft_of(campaigns.get_campaign(session, org_id, bot_id))
    except NotFound:
        return {}


def edit_draft(
    session: Session,
    org_id: int,
    bot_id: int,
    edit: Callable[[dict[str, Any]], Draft],
    now: datetime,
) -> Campaign:
    """Apply a `campaign_draft` edit and store the result with `put_draft`'s checks (media
    of this organization only); an edit that raises stores nothing."""
    return campaigns.put_draft(
        session, org_id, bot_id, edit(current_draft(session, org_id, bot_id)), now
    )
