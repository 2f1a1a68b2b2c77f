"""What a user quiet since a given time would receive, and when: the engine's own schedule."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from reengage.domain import recovery as rec
from reengage.domain import schedule as sch
from reengage.services import recovery
from reengage.services.errors import InvalidInput


def preview_campaign(
    session: Session,
    org_id: int,
    bot_id: int,
    last_activity: datetime,
    *,
    time_zone: str | None = None,
    published: bool = False,
    language: str = "pt-BR",
) -> list[rec.PreviewStep]:
    """Each step's due time for the draft (or the published version), as the engine runs it."""
    row = recovery.get_campaign(session, org_id, bot_id)
    if published:
        if row.version == 0:
            raise InvalidInput("nothing published yet", "published")
        campaign = recovery.version_of(session, row.id, row.version)
    else:
        try:
            campaign = rec.parse_campaign(row.draft)
        except rec.CampaignError as exc:  # pragma: no cover - drafts are validated
            raise InvalidInput(exc.message, exc.field) from exc
    try:
        return rec.preview(campaign, last_activity, time_zone, language)
    except sch.ScheduleError as exc:
        raise InvalidInput(exc.message("en"), "time_zone") from exc
