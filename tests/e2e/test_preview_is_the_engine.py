"""The preview and the engine agree, for any campaign: random schedules (relative, tomorrow
at, +N days at), inactive steps, send windows, zones across their DST changes and contact
zones. The engine runs each on a manual clock; every step goes out at the preview's instant."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from reengage.adapters.clock import ManualClock
from reengage.adapters.db.models import Delivery
from reengage.config import Settings
from reengage.domain.activity import ActivityEvent, ChannelKind, EventType, Inbound
from reengage.runtime import Runtime
from reengage.services import campaigns as campaign_service
from reengage.services.campaign_preview import preview_campaign
from reengage.testing.time_travel import TimeTravel
from tests.factories import make_bot, make_org

ZONES = ["America/Sao_Paulo", "America/New_York", "Europe/Lisbon", "Asia/Kolkata"]


@st.composite
def schedules(draw: st.DrawFn) -> str:
    hour, minute = draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 59]))
    at = f"{hour:02d}:{minute:02d}"
    return draw(
        st.one_of(
            st.integers(1, 3 * 24 * 60).map(lambda m: f"{m}m"),
            st.just(f"amanhã {at}"),
            st.integers(1, 3).map(lambda d: f"+{d}d {at}"),
        )
    )


@st.composite
def campaigns(draw: st.DrawFn) -> dict[str, Any]:
    steps = [
        {
            "schedule": draw(schedules()),
            "blocks": [{"kind": "text", "text": f"step {i}", "active": draw(st.booleans())}],
        }
        for i in range(draw(st.integers(1, 4)))
    ]
    steps[draw(st.integers(0, len(steps) - 1))]["blocks"][0]["active"] = True
    campaign: dict[str, Any] = {
        "time_zone": draw(st.sampled_from(ZONES)),
        "threshold": f"{draw(st.integers(1, 180))}m",
        "ignore_paid": False,
        "steps": steps,
    }
    if draw(st.booleans()):
        start = draw(st.integers(6, 12))
        days = draw(st.sets(st.integers(0, 6), min_size=1))
        campaign["send_window"] = {
            "start": f"{start:02d}:00",
            "end": f"{start + draw(st.integers(1, 10)):02d}:30",
            "weekdays": sorted(days),
        }
    return campaign


anchors = st.datetimes(
    # naive bounds, as hypothesis wants them; the values come out in UTC
    min_value=datetime(2026, 3, 1),  # noqa: DTZ001
    max_value=datetime(2026, 11, 30),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    campaign=campaigns(),
    anchor=anchors,
    contact_zone=st.one_of(st.none(), st.sampled_from(ZONES)),
)
def test_each_step_goes_out_at_the_instant_the_preview_shows(
    sqlite_template: Path,
    tmp_path_factory: Any,
    campaign: dict[str, Any],
    anchor: datetime,
    contact_zone: str | None,
) -> None:
    anchor = anchor.replace(microsecond=0)
    path = tmp_path_factory.mktemp("preview") / "reengage.db"
    shutil.copy(sqlite_template, path)
    clock = ManualClock(anchor)
    runtime = Runtime.build(Settings(database_url=f"sqlite:///{path}"), clock=clock)
    try:
        org = make_org(runtime).org_id
        bot = make_bot(runtime, org, channel=ChannelKind.SIMULATOR)
        with runtime.sessions.begin() as s:
            campaign_service.put_draft(s, org, bot, campaign, anchor)
            campaign_service.publish(s, org, bot, anchor)
            campaign_service.set_enabled(s, org, bot, True, anchor)
        with runtime.sessions() as s:
            preview = preview_campaign(s, org, bot, anchor, time_zone=contact_zone, published=True)
        expected = {p.index: p.due_at for p in preview.steps}
        said = Inbound(None, None, contact_zone)
        runtime.record(
            org, [ActivityEvent("e1", EventType.USER_MESSAGE, bot, "u", anchor, None, said)]
        )
        travel = TimeTravel(runtime, clock, step=timedelta(milliseconds=1))
        travel.until(anchor + timedelta(days=40), stop_when_quiet=True)
        assert sent_steps(runtime) == expected
    finally:
        runtime.close()


def sent_steps(runtime: Runtime) -> dict[int, datetime]:
    with runtime.sessions() as s:
        rows = s.execute(
            select(Delivery.dedup_key, Delivery.sent_at).where(Delivery.purpose == "recovery")
        ).all()
    return {int(key.split(":")[2]): at for key, at in rows if at is not None}
