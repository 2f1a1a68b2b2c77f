"""Usual-hour timing: the hour-of-week profile, the `+Nd usual` schedule form, its fallback
below the observation minimum, the send window, and a DST week."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, time, timedelta

import pytest

from reengage.domain import recovery as rec
from reengage.domain.schedule import (
    USUAL_FALLBACK,
    DaysAt,
    DaysUsual,
    ScheduleError,
    SendWindow,
    describe,
    due_and_source,
    format_schedule,
    parse_schedule,
    zone,
)
from reengage.domain.usual_hour import (
    ENCODED_BYTES,
    HourProfile,
    hour_of_week,
    learns_from,
    window_hours,
)

SP, NY = zone("America/Sao_Paulo"), zone("America/New_York")


def local(tz: object, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)  # type: ignore[arg-type, misc]


def learned(tz: object, days: list[date], hour: int, minute: int = 15) -> HourProfile:
    profile = HourProfile()
    for day in days:
        profile = profile.observe(local(tz, day.year, day.month, day.day, hour, minute), tz)  # type: ignore[arg-type]
    return profile


def days_from(first: date, n: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]


def test_a_profile_is_a_few_hundred_bytes_and_reads_back() -> None:
    profile = learned(SP, days_from(date(2026, 3, 2), 10), 19)
    raw = profile.encode()
    assert len(raw) == ENCODED_BYTES == 340
    back = HourProfile.decode(raw)
    assert back.last_hour == profile.last_hour
    assert back.counts == pytest.approx(profile.counts, abs=1 / 64)
    assert HourProfile.decode(None) == HourProfile() == HourProfile.decode(b"short")


@pytest.mark.parametrize("minutes", [-60 * 24, -50, 0, 44, 45, 60 * 30])
def test_a_profile_learns_only_from_a_later_hour(minutes: int) -> None:
    profile = learned(SP, days_from(date(2026, 3, 2), 3), 19)  # last: Wed 4th, 19:15 local
    instants = [local(SP, 2026, 3, 4, 19, 15) + timedelta(minutes=minutes)]
    changed = profile.observe(instants[0], SP) is not profile
    assert learns_from(profile.encode(), instants) is changed is (minutes >= 45)
    assert learns_from(None, instants)
    assert learns_from(b"short", instants)


@pytest.mark.parametrize("hours", [1, 30, 24 * 7 * 9 + 5])
def test_the_encoding_is_each_slots_count_in_64ths(hours: int) -> None:
    profile = learned(SP, days_from(date(2026, 1, 5), 40), 19)
    later = profile.observe(local(SP, 2026, 2, 14, 8) + timedelta(hours=hours), SP)
    counts = struct.unpack(">I168H", later.encode())
    assert counts == (later.last_hour, *(min(round(c * 64), 0xFFFF) for c in later.counts))


def test_observations_are_local_hours_of_the_week_and_once_per_hour() -> None:
    monday_19 = local(SP, 2026, 3, 2, 19, 5)
    assert hour_of_week(monday_19, SP) == 19
    assert hour_of_week(local(SP, 2026, 3, 8, 23, 59), SP) == 6 * 24 + 23
    profile = HourProfile().observe(monday_19, SP)
    again = profile.observe(monday_19 + timedelta(minutes=30), SP)  # the same hour
    assert again is profile
    assert profile.total == 1
    older = profile.observe(monday_19 - timedelta(hours=3), SP)  # a late message
    assert older is profile


def test_counts_halve_every_four_weeks() -> None:
    first = HourProfile().observe(local(SP, 2026, 3, 2, 10, 0), SP)
    later = first.observe(local(SP, 2026, 3, 30, 10, 0), SP)  # 28 days later, same hour
    assert later.counts[10] == pytest.approx(1.5)


def test_the_usual_hour_is_the_peak_hour() -> None:
    profile = learned(SP, days_from(date(2026, 3, 2), 14), 19)
    profile = learned_more(profile, SP, days_from(date(2026, 3, 2), 3), 8)
    assert profile.usual_hour(date(2026, 3, 17), SP) == 19
    due, source = due_and_source(DaysUsual(1), local(SP, 2026, 3, 16, 14, 0), SP, None, profile)
    assert (due, source) == (local(SP, 2026, 3, 17, 19, 0), "profile")


def learned_more(profile: HourProfile, tz: object, days: list[date], hour: int) -> HourProfile:
    # observed after the others (a later week) so that each counts
    for day in days:
        at = local(tz, day.year, day.month, day.day, hour, 0) + timedelta(days=14)
        profile = profile.observe(at, tz)  # type: ignore[arg-type]
    return profile


def test_below_the_observation_minimum_the_stated_fallback_holds() -> None:
    thin = learned(SP, days_from(date(2026, 3, 2), 4), 19)  # 4 < 5 observations
    assert thin.usual_hour(date(2026, 3, 10), SP) is None
    anchor = local(SP, 2026, 3, 9, 14, 0)
    schedule = parse_schedule("+1d usual 18:30")
    assert due_and_source(schedule, anchor, SP, None, thin) == (
        local(SP, 2026, 3, 10, 18, 30),
        "fallback",
    )
    # Six daily observations decay to 5.65 by the last one: enough.
    enough = learned(SP, days_from(date(2026, 3, 2), 6), 19)
    assert enough.total == pytest.approx(sum(0.5 ** (d / 28) for d in range(6)))
    assert due_and_source(schedule, anchor, SP, None, enough) == (
        local(SP, 2026, 3, 10, 19, 0),
        "profile",
    )
    assert due_and_source(schedule, anchor, SP, None, None)[1] == "fallback"


def test_the_usual_hour_across_a_dst_week() -> None:
    # New York springs forward on Sunday 2026-03-08: 20:15 local is 01:15 UTC before it,
    # 00:15 UTC after it.
    profile = learned(NY, days_from(date(2026, 3, 1), 14), 20)  # Mar 1 .. Mar 14
    # Every observation landed on 20h local, on both sides of the change.
    assert {i for i, c in enumerate(profile.counts) if c} == {d * 24 + 20 for d in range(7)}
    sundays = 0.5 ** ((13 * 24 - 1) / (28 * 24)) + 0.5 ** (6 * 24 / (28 * 24))
    assert profile.counts[6 * 24 + 20] == pytest.approx(sundays)
    before = due_and_source(DaysUsual(1), local(NY, 2026, 3, 6, 10, 0), NY, None, profile)
    after = due_and_source(DaysUsual(1), local(NY, 2026, 3, 8, 10, 0), NY, None, profile)
    assert before == (datetime(2026, 3, 8, 1, 0, tzinfo=UTC), "profile")  # Sat 20:00 EST
    assert after == (datetime(2026, 3, 10, 0, 0, tzinfo=UTC), "profile")  # Mon 20:00 EDT


def test_the_usual_hour_is_chosen_inside_the_send_window() -> None:
    late = learned(SP, days_from(date(2026, 3, 2), 10), 22)
    late = learned_more(late, SP, days_from(date(2026, 3, 2), 6), 12)
    window = SendWindow(time(8, 0), time(21, 0))
    assert window_hours(window.start, window.end) == range(8, 21)
    assert window_hours(time(8, 30), time(20, 30)) == range(9, 21)
    anchor = local(SP, 2026, 3, 30, 9, 0)
    assert due_and_source(DaysUsual(1), anchor, SP, window, late) == (
        local(SP, 2026, 3, 31, 12, 0),
        "profile",
    )
    # Without a window the evening peak wins.
    assert due_and_source(DaysUsual(1), anchor, SP, None, late)[0] == local(SP, 2026, 3, 31, 22, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+1d usual", DaysUsual(1, USUAL_FALLBACK)),
        ("+1d usual 18:00", DaysUsual(1, time(18, 0))),
        ("+2d usual or 18:30", DaysUsual(2, time(18, 30))),
        ("+1d horário habitual", DaysUsual(1, USUAL_FALLBACK)),
        ("+3d Horário Habitual ou 9h00", DaysUsual(3, time(9, 0))),
        ("+2d 18:30", DaysAt(2, time(18, 30))),
    ],
)
def test_usual_forms_parse_and_format_back(text: str, expected: object) -> None:
    parsed = parse_schedule(text)
    assert parsed == expected
    assert parse_schedule(format_schedule(parsed)) == parsed


def test_usual_form_errors_are_the_existing_messages() -> None:
    with pytest.raises(ScheduleError) as days:
        parse_schedule("+0d usual")
    assert days.value.message("en") == "Invalid number of days: +0d (1 to 365)"
    with pytest.raises(ScheduleError) as at:
        parse_schedule("+1d usual 25:00")
    assert at.value.message() == "Horário inválido: 25:00"


def test_usual_form_is_described_with_its_fallback() -> None:
    assert describe(DaysUsual(1, time(18, 0)), "en") == (
        "tomorrow, at the contact's usual hour (without enough history: at 18:00)"
    )
    assert describe(DaysUsual(2, time(18, 0))) == (
        "2 dias depois, no horário habitual do contato (sem histórico: às 18:00)"
    )


def test_the_preview_says_which_instants_came_from_a_profile() -> None:
    campaign = rec.parse_campaign(
        {
            "time_zone": "America/Sao_Paulo",
            "steps": [
                {"schedule": "1h", "blocks": [{"text": "a"}]},
                {"schedule": "+1d usual 18:00", "blocks": [{"text": "b"}]},
            ],
        }
    )
    profile = learned(SP, days_from(date(2026, 3, 2), 10), 19)
    quiet = local(SP, 2026, 3, 16, 10, 0)
    with_profile = rec.preview(campaign, quiet, profile=profile)
    assert [(s.source, s.local.hour) for s in with_profile] == [("fixed", 11), ("profile", 19)]
    without = rec.preview(campaign, quiet)
    assert [(s.source, s.local.hour) for s in without] == [("fixed", 11), ("fallback", 18)]
