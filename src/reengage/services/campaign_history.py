"""A campaign's published versions: their list, the difference between two of them, and the
roll back to an earlier one (its content becomes the draft and is published as a new version)."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from reengage.adapters.db.models import CampaignVersion
from reengage.i18n import N_
from reengage.services import campaigns
from reengage.services.audit_log import record_change
from reengage.services.errors import NotFound
from reengage.services.tenancy import scoped


@dataclass(frozen=True, slots=True)
class DiffLine:
    sign: str  # "+", "-", " " or "@" (a hunk header)
    text: str


def list_versions(session: Session, org_id: int, bot_id: int) -> list[CampaignVersion]:
    """The campaign's published versions, newest first (none without a campaign)."""
    try:
        row = campaigns.get_campaign(session, org_id, bot_id)
    except NotFound:
        return []
    stmt = scoped(CampaignVersion, org_id, CampaignVersion.campaign_id == row.id)
    return list(session.scalars(stmt.order_by(CampaignVersion.version.desc())))


def get_version(session: Session, org_id: int, bot_id: int, version: int) -> CampaignVersion:
    row = campaigns.get_campaign(session, org_id, bot_id)
    found = session.scalar(
        scoped(
            CampaignVersion,
            org_id,
            CampaignVersion.campaign_id == row.id,
            CampaignVersion.version == version,
        )
    )
    if found is None:
        raise NotFound(N_("version {version} not found"), "version", version=version)
    return found


def _lines(definition: dict[str, Any]) -> list[str]:
    return json.dumps(definition, ensure_ascii=False, indent=1, sort_keys=True).splitlines()


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[DiffLine]:
    """What changed from `old` to `new`, line by line of their JSON (empty: nothing)."""
    out = []
    for line in difflib.unified_diff(_lines(old), _lines(new), lineterm="", n=2):
        if line.startswith(("---", "+++")):
            continue
        sign = "@" if line.startswith("@@") else line[:1]
        out.append(DiffLine(sign, line if sign == "@" else line[1:]))
    return out


def roll_back(
    session: Session, org_id: int, bot_id: int, version: int, now: datetime, actor: str
) -> int:
    """Make `version`'s content the draft again and publish it as a new version (with the
    draft's checks: a media asset deleted since is refused); audit-logged before and after."""
    definition = dict(get_version(session, org_id, bot_id, version).definition)
    before = campaigns.campaign_state(session, org_id, bot_id)
    campaigns.put_draft(session, org_id, bot_id, definition, now)
    new_version = campaigns.publish(session, org_id, bot_id, now)
    after = campaigns.campaign_state(session, org_id, bot_id)
    subject = f"bot {bot_id} campaign, back to version {version}"
    record_change(
        session,
        org_id,
        actor,
        "campaign.rollback",
        subject,
        now,
        before=before,
        after=after,
    )
    return new_version
