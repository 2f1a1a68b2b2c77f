"""A campaign's deliveries over time, for the results page (see `domain/send_series.py`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from reengage.adapters.db.models import Delivery
from reengage.domain import send_series
from reengage.services.campaign_results import Filters, campaign_of
from reengage.services.tenancy import scoped_columns

# The page reads at most this many deliveries; a longer range is cut to its first ones.
MOST = 200_000


def delivery_days(
    session: Session, org_id: int, bot_id: int, filters: Filters
) -> list[send_series.Day]:
    """Per UTC day, the campaign's deliveries of the episodes the results count."""
    filters.check()
    campaign = campaign_of(session, org_id, bot_id)
    stmt = scoped_columns(
        Delivery, org_id, Delivery.status, Delivery.scheduled_at, Delivery.sent_at
    ).where(Delivery.bot_id == campaign.bot_id, Delivery.episode_id.is_not(None))
    if filters.start is not None:
        stmt = stmt.where(Delivery.episode_started_at >= filters.start)
    if filters.end is not None:
        stmt = stmt.where(Delivery.episode_started_at < filters.end)
    if filters.version is not None:
        stmt = stmt.where(Delivery.episode_version == filters.version)
    rows: list[tuple[str, datetime, datetime | None]] = [
        (status, due, sent) for status, due, sent in session.execute(stmt.limit(MOST))
    ]
    return send_series.daily(rows)
