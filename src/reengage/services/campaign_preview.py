"""What a user quiet since a given time would receive, and when: the engine's own schedule."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from reengage.domain import recovery as rec
from reengage.domain import schedule as sch
from reengage.domain.activity import ChannelKind
from reengage.i18n import N_
from reengage.services import campaigns
from reengage.services.errors import InvalidInput
from reengage.services.tenancy import get_bot
from reengage.silence.live_campaign import version_of


@dataclass(frozen=True, slots=True)
class Preview:
    steps: list[rec.PreviewStep]
    warnings: dict[int, str] = field(default_factory=dict)  # by step index


def preview_campaign(
    session: Session,
    org_id: int,
    bot_id: int,
    last_activity: datetime,
    *,
    time_zone: str | None = None,
    published: bool = False,
    language: str = "pt-BR",
) -> Preview:
    """Each step's due time for the draft (or the published version), as the engine runs it,
    and on WhatsApp the steps that can fall outside the 24-hour window without a template."""
    row = campaigns.get_campaign(session, org_id, bot_id)
    if published:
        if row.version == 0:
            raise InvalidInput(N_("nothing published yet"), "published")
        campaign = version_of(session, row.id, row.version)
    else:
        try:
            campaign = rec.parse_campaign(row.draft)
        except rec.CampaignError as exc:  # pragma: no cover - drafts are validated
            raise InvalidInput(exc.message, exc.field) from exc
    try:
        steps = rec.preview(campaign, last_activity, time_zone, language)
    except sch.ScheduleError as exc:
        raise InvalidInput.of(exc, "time_zone") from exc
    warnings: dict[int, str] = {}
    if get_bot(session, org_id, bot_id).channel == ChannelKind.WHATSAPP.value:
        warnings = rec.late_steps(campaign, language)
    return Preview(steps, warnings)
