"""When each bot's subject timer must wake: the earliest moment any policy, flow default or
live recovery campaign could act on a silence."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from reengage.adapters.db.models import Bot, Campaign, CampaignVersion, FlowRow, PolicyRow
from reengage.domain import policy as pol
from reengage.domain.duration import parse_duration
from reengage.services.tenancy import scoped, scoped_columns

QUESTION_DEFAULT_TIMEOUT = timedelta(hours=1)


def refresh_wake(session: Session, org_id: int) -> None:
    """Each bot's subject timer must fire no later than the first stage any policy could run:
    the shortest of its inactivity threshold and every first stage among its policies."""
    rows = session.scalars(scoped(PolicyRow, org_id)).all()
    shortest: dict[int | None, timedelta] = {}
    for row in rows:
        layer = pol.parse_layer(row.settings)
        if layer.enabled is False:
            continue
        first = min(
            [r.after for r in layer.reminders or ()] + ([layer.timeout] if layer.timeout else []),
            default=None,
        )
        if first is not None:
            current = shortest.get(row.bot_id)
            shortest[row.bot_id] = first if current is None else min(current, first)
    with_flows = set(session.scalars(scoped_columns(FlowRow, org_id, FlowRow.bot_id)))
    recovery: dict[int, timedelta] = {}
    # A live recovery campaign acts after its own threshold of silence (also after a close).
    for campaign in session.scalars(scoped(Campaign, org_id, Campaign.enabled.is_(True))):
        versions = session.scalars(
            scoped_columns(CampaignVersion, org_id, CampaignVersion.definition).where(
                CampaignVersion.campaign_id == campaign.id,
                CampaignVersion.version == campaign.version,
            )
        ).all()
        for definition in versions:
            threshold = parse_duration(str(definition.get("threshold", "10m")))
            recovery[campaign.bot_id] = threshold
            current = shortest.get(campaign.bot_id)
            shortest[campaign.bot_id] = threshold if current is None else min(current, threshold)
    for bot in session.scalars(scoped(Bot, org_id)):
        # A bot with flows has question nodes under the shipped 1-hour default.
        question_default = QUESTION_DEFAULT_TIMEOUT if bot.id in with_flows else None
        candidates = [shortest.get(bot.id), shortest.get(None), question_default]
        known = [c for c in candidates if c is not None]
        bot.wake_after_s = int(min(known).total_seconds()) if known else None
        after_close = recovery.get(bot.id)
        bot.recovery_threshold_s = int(after_close.total_seconds()) if after_close else None
