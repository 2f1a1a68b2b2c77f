"""Schedules: every written form in both languages, DST in three zones, send windows, and
month and year boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from reengage.domain.schedule import (
    DaysAt,
    Delay,
    ScheduleError,
    SendWindow,
    describe,
    format_schedule,
    next_due,
    parse_schedule,
    parse_window,
    resolve_local,
    zone,
)

SP, NY, LX = zone("America/Sao_Paulo"), zone("America/New_York"), zone("Europe/Lisbon")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", Delay(timedelta(minutes=30))),
        ("2h", Delay(timedelta(hours=2))),
        ("1d12h", Delay(timedelta(days=1, hours=12))),
        ("1h30m", Delay(timedelta(hours=1, minutes=30))),
        ("90s", Delay(timedelta(seconds=90))),
        (" 2H ", Delay(timedelta(hours=2))),
        ("+2h", Delay(timedelta(hours=2))),  # "in two hours", as operators also write it
        ("tomorrow 09:00", DaysAt(1, time(9, 0))),
        ("amanhã 09:00", DaysAt(1, time(9, 0))),
        ("Amanhã às 9h00", DaysAt(1, time(9, 0))),
        ("amanha 7:05", DaysAt(1, time(7, 5))),
        ("tomorrow at 23:59", DaysAt(1, time(23, 59))),
        ("+2d 18:30", DaysAt(2, time(18, 30))),
        ("+2d18:30", DaysAt(2, time(18, 30))),
        ("+7d às 08:00", DaysAt(7, time(8, 0))),
    ],
)
def test_every_form_parses(text: str, expected: object) -> None:
    schedule = parse_schedule(text)
    assert schedule == expected
    assert parse_schedule(format_schedule(schedule)) == schedule


@pytest.mark.parametrize(
    ("text", "code", "pt", "en"),
    [
        (
            "45s",
            "too_short",
            "O intervalo mínimo é de 1 minuto: 45s",
            "The minimum delay is 1 minute: 45s",
        ),
        (
            "0m",
            "too_short",
            "O intervalo mínimo é de 1 minuto: 0m",
            "The minimum delay is 1 minute: 0m",
        ),
        ("tomorrow 25:00", "time", "Horário inválido: 25:00", "Invalid time: 25:00"),
        ("amanhã 12:60", "time", "Horário inválido: 12:60", "Invalid time: 12:60"),
        ("+0d 10:00", "days", "Número de dias inválido: +0d", "Invalid number of days: +0d"),
        ("+400d 10:00", "days", "Número de dias inválido: +400d", "Invalid number of days: +400d"),
        (
            "400d",
            "too_long",
            "O intervalo máximo é de 365 dias: 400d",
            "The maximum delay is 365 days: 400d",
        ),
        ("next week", "unknown", "Agendamento inválido: next week", "Invalid schedule: next week"),
        ("", "empty", "O agendamento está vazio", "The schedule is empty"),
    ],
)
def test_invalid_schedules_say_what_is_wrong(text: str, code: str, pt: str, en: str) -> None:
    with pytest.raises(ScheduleError) as err:
        parse_schedule(text)
    assert err.value.code == code
    assert err.value.message("pt-BR").startswith(pt)
    assert err.value.message("en").startswith(en)


def test_unknown_time_zone() -> None:
    with pytest.raises(ScheduleError) as err:
        zone("Mars/Olympus_Mons")
    assert err.value.message() == "Fuso horário desconhecido: Mars/Olympus_Mons"


@pytest.mark.parametrize(
    ("text", "pt", "en"),
    [
        ("30m", "30 minutos depois", "30 minutes later"),
        ("1d12h", "1 dia e 12 horas depois", "1 day and 12 hours later"),
        ("amanhã 09:00", "amanhã às 09:00", "tomorrow at 09:00"),
        ("+2d 18:30", "2 dias depois, às 18:30", "2 days later at 18:30"),
    ],
)
def test_described_in_words(text: str, pt: str, en: str) -> None:
    schedule = parse_schedule(text)
    assert (describe(schedule), describe(schedule, "en")) == (pt, en)


@pytest.mark.parametrize(
    ("text", "anchor", "tz", "expected"),
    [
        # Relative delays are real durations, whatever the clocks do.
        ("2h", utc(2024, 3, 10, 6, 30), NY, utc(2024, 3, 10, 8, 30)),
        ("1d12h", utc(2024, 1, 1, 0, 0), SP, utc(2024, 1, 2, 12, 0)),
        # Tomorrow is the next *local* day: 22:30 in São Paulo is already 01:30 UTC.
        ("amanhã 09:00", utc(2024, 5, 10, 1, 30), SP, utc(2024, 5, 10, 12, 0)),
        ("tomorrow 09:00", utc(2024, 5, 10, 13, 0), SP, utc(2024, 5, 11, 12, 0)),
        # Month, year and leap-day boundaries.
        ("tomorrow 08:00", utc(2024, 12, 31, 15, 0), LX, utc(2025, 1, 1, 8, 0)),
        ("tomorrow 08:00", utc(2024, 1, 31, 15, 0), LX, utc(2024, 2, 1, 8, 0)),
        ("+1d 10:00", utc(2024, 2, 28, 15, 0), NY, utc(2024, 2, 29, 15, 0)),
        ("+2d 10:00", utc(2023, 2, 28, 15, 0), NY, utc(2023, 3, 2, 15, 0)),
        ("+3d 18:30", utc(2024, 12, 30, 12, 0), SP, utc(2025, 1, 2, 21, 30)),
        # Spring forward: the wall time does not exist, the first instant after the gap wins.
        ("tomorrow 02:30", utc(2024, 3, 9, 15, 0), NY, utc(2024, 3, 10, 7, 0)),
        ("tomorrow 01:30", utc(2024, 3, 30, 12, 0), LX, utc(2024, 3, 31, 1, 0)),
        ("tomorrow 00:30", utc(2018, 11, 3, 12, 0), SP, utc(2018, 11, 4, 3, 0)),
        # Fall back: the wall time happens twice, the first occurrence wins.
        ("tomorrow 01:30", utc(2024, 11, 2, 15, 0), NY, utc(2024, 11, 3, 5, 30)),
        ("tomorrow 01:30", utc(2024, 10, 26, 12, 0), LX, utc(2024, 10, 27, 0, 30)),
        ("tomorrow 23:30", utc(2019, 2, 15, 12, 0), SP, utc(2019, 2, 17, 1, 30)),
        # Across a transition, "+N days at" keeps the wall time, not the UTC offset.
        ("+1d 09:00", utc(2024, 3, 9, 14, 0), NY, utc(2024, 3, 10, 13, 0)),
        ("+1d 09:00", utc(2024, 10, 26, 8, 0), LX, utc(2024, 10, 27, 9, 0)),
    ],
)
def test_next_due(text: str, anchor: datetime, tz: object, expected: datetime) -> None:
    assert next_due(parse_schedule(text), anchor, tz) == expected  # type: ignore[arg-type]


WEEKDAYS = parse_window("08:00", "21:00", [0, 1, 2, 3, 4])


@pytest.mark.parametrize(
    ("due", "window", "tz", "expected"),
    [
        # Inside the window: unchanged. (2024-05-08 is a Wednesday.)
        (utc(2024, 5, 8, 15, 0), WEEKDAYS, SP, utc(2024, 5, 8, 15, 0)),
        # Too early: held to the opening. 05:00 local → 08:00 local.
        (utc(2024, 5, 8, 8, 0), WEEKDAYS, SP, utc(2024, 5, 8, 11, 0)),
        # Too late on Friday: held to Monday's opening.
        (utc(2024, 5, 11, 1, 0), WEEKDAYS, SP, utc(2024, 5, 13, 11, 0)),
        # Saturday noon: Monday.
        (utc(2024, 5, 11, 15, 0), WEEKDAYS, SP, utc(2024, 5, 13, 11, 0)),
        # Exactly at closing time is outside: next day's opening.
        (utc(2024, 5, 8, 0, 0), parse_window("08:00", "21:00"), SP, utc(2024, 5, 8, 11, 0)),
        # A window opening in a DST gap opens when the gap ends.
        (utc(2024, 3, 10, 5, 0), parse_window("02:30", "20:00"), NY, utc(2024, 3, 10, 7, 0)),
        # Year boundary: New Year's Eve 23:00 in Lisbon → 1 January (a Wednesday), 08:00.
        (utc(2024, 12, 31, 23, 0), WEEKDAYS, LX, utc(2025, 1, 1, 8, 0)),
    ],
)
def test_send_windows_hold_to_the_next_allowed_instant(
    due: datetime, window: SendWindow, tz: object, expected: datetime
) -> None:
    assert (
        next_due(
            Delay(timedelta(minutes=1)),
            due - timedelta(minutes=1),
            tz,  # type: ignore[arg-type]
            window,
        )
        == expected
    )


@pytest.mark.parametrize(
    ("start", "end", "days", "message"),
    [
        ("21:00", "08:00", None, "Janela de envio inválida: 21:00-08:00"),
        ("08:00", "25:00", None, "Horário inválido: 25:00"),
        ("08:00", "18:00", [], "Janela de envio inválida: weekdays []"),
        ("08:00", "18:00", [7], "Janela de envio inválida: weekdays [7]"),
    ],
)
def test_invalid_windows(start: str, end: str, days: list[int] | None, message: str) -> None:
    with pytest.raises(ScheduleError) as err:
        parse_window(start, end, days)
    assert err.value.message() == message


def test_an_existing_time_resolves_plainly() -> None:
    assert resolve_local(date(2024, 7, 1), time(9, 0), LX) == utc(2024, 7, 1, 8, 0)
