"""The engine sends a usual-hour step at the hour the contact's stored profile says (learned
from their messages as they were recorded), and at the fallback for a contact with too few."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Contact, Delivery
from reengage.config import Settings
from reengage.domain.activity import ChannelKind
from reengage.runtime import Runtime
from reengage.services import campaigns as campaign_service
from reengage.testing.time_travel import TimeTravel
from tests.factories import make_bot, make_org, message

CAMPAIGN = {
    "time_zone": "America/Sao_Paulo",
    "threshold": "10m",
    "ignore_paid": False,
    "steps": [{"schedule": "+1d horário habitual 09:00", "blocks": [{"text": "oi"}]}],
}
START = datetime(2026, 3, 2, 22, 10, tzinfo=UTC)  # Monday 19:10 in São Paulo


def test_usual_hour_steps_go_out_at_the_learned_hour(sqlite_template: Path, tmp_path: Path) -> None:
    path = tmp_path / "reengage.db"
    shutil.copy(sqlite_template, path)
    clock = ManualClock(START)
    runtime = Runtime.build(Settings(database_url=f"sqlite:///{path}"), clock=clock)
    try:
        org = make_org(runtime).org_id
        bot = make_bot(runtime, org, channel=ChannelKind.SIMULATOR)
        for day in range(7):  # "regular" writes every evening; "new" only twice
            at = START + timedelta(days=day)
            runtime.record(org, [message(bot, "regular", at)])
            if day < 2:
                runtime.record(org, [message(bot, "new", at)])
        quiet = datetime(2026, 3, 9, 13, 0, tzinfo=UTC)  # Monday 10:00 in São Paulo
        clock.set(quiet)
        with runtime.sessions.begin() as s:
            campaign_service.put_draft(s, org, bot, CAMPAIGN, quiet)
            campaign_service.publish(s, org, bot, quiet)
            campaign_service.set_enabled(s, org, bot, True, quiet)
        runtime.record(org, [message(bot, "regular", quiet), message(bot, "new", quiet)])
        TimeTravel(runtime, clock, step=timedelta(minutes=1)).until(
            quiet + timedelta(days=2), stop_when_quiet=True
        )
        with runtime.sessions() as s:
            sent = dict(
                s.execute(
                    select(Contact.external_id, Delivery.sent_at)
                    .join(Contact, Contact.id == Delivery.contact_id)
                    .where(Delivery.purpose == "recovery")
                ).all()
            )
        # Tuesday 19:00 São Paulo (the profile), Tuesday 09:00 (the fallback).
        assert sent == {
            "regular": datetime(2026, 3, 10, 22, 0, tzinfo=UTC),
            "new": datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
        }
    finally:
        runtime.close()
