"""Recovery step schedules: parse them, describe them, and compute when a step is due.

Forms: a relative delay (`30m`, `2h`, `1d12h`; at least a minute), "tomorrow at a time"
(`tomorrow 09:00`, `amanhã 09:00`), "N days later at a time" (`+2d 18:30`, `+2d18:30`) and
"N days later at the contact's usual hour" (`+1d usual`, `+1d horário habitual`, with a stated
fallback time for a contact whose profile holds too few observations: `+1d usual 18:00`;
`USUAL_FALLBACK` without one).
Wall-clock times are in the campaign's (or the contact's) time zone. A local time that does
not exist (spring forward) moves to the first instant after the gap; an ambiguous one (fall
back) takes its first occurrence. A send window holds a due time to the next allowed instant.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reengage import i18n
from reengage.domain.duration import format_duration
from reengage.domain.usual_hour import HourProfile, window_hours

MIN_DELAY = timedelta(minutes=1)
MAX_DELAY = timedelta(days=365)
MAX_DAYS = 365
USUAL_FALLBACK = time(10, 0)


class ScheduleError(ValueError):
    """A schedule, time zone or window that cannot be used; `message(language)` says why."""

    def __init__(self, code: str, value: str) -> None:
        self.code, self.value = code, value
        super().__init__(self.message("en"))

    def message(self, language: str = "pt-BR") -> str:
        # The texts are in the message catalogue, under "schedule:<code>".
        return i18n.keyed("schedule", self.code, language, v=self.value)


@dataclass(frozen=True, slots=True)
class Delay:
    delta: timedelta


@dataclass(frozen=True, slots=True)
class DaysAt:
    """`days` calendar days after the anchor's local date, at `at` local time (1 = tomorrow)."""

    days: int
    at: time


@dataclass(frozen=True, slots=True)
class DaysUsual:
    """`days` calendar days after the anchor's local date, at the contact's usual hour (their
    hour-of-week profile), or at `fallback` local time when the profile is too thin."""

    days: int
    fallback: time = USUAL_FALLBACK


Schedule = Delay | DaysAt | DaysUsual

_DELAY = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_TOMORROW = re.compile(r"(?:tomorrow|amanha)\s*(?:at|as)?\s*(\S+)")
_DAYS_USUAL = re.compile(
    r"\+(\d+)d\s*(?:at|as)?\s*(?:usual|horario habitual)(?:\s+(?:or|ou)?\s*(\S+))?"
)
_DAYS_AT = re.compile(r"\+(\d+)d\s*(?:at|as)?\s*(\S+)")
_TIME = re.compile(r"(\d{1,2})[:h](\d{2})")


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def parse_time(text: str) -> time:
    """`09:00`, `9:00` or `9h00`; raise ScheduleError("time") otherwise."""
    match = _TIME.fullmatch(text.strip().lower())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ScheduleError("time", text.strip())
    return time(int(match[1]), int(match[2]))


def parse_schedule(text: str) -> Schedule:
    """A schedule from its written form, in English or Portuguese."""
    raw = _plain(text)
    if not raw:
        raise ScheduleError("empty", text)
    if match := _TOMORROW.fullmatch(raw):
        return DaysAt(1, parse_time(match[1]))
    if match := _DAYS_USUAL.fullmatch(raw):
        days = int(match[1])
        if not 1 <= days <= MAX_DAYS:
            raise ScheduleError("days", f"+{match[1]}d")
        return DaysUsual(days, parse_time(match[2]) if match[2] else USUAL_FALLBACK)
    if match := _DAYS_AT.fullmatch(raw):
        days = int(match[1])
        if not 1 <= days <= MAX_DAYS:
            raise ScheduleError("days", f"+{match[1]}d")
        return DaysAt(days, parse_time(match[2]))
    match = _DELAY.fullmatch(raw.replace(" ", "").removeprefix("+"))
    if match and any(match.groups()):
        d, h, m, s = (int(g or 0) for g in match.groups())
        delta = timedelta(days=d, hours=h, minutes=m, seconds=s)
        if delta < MIN_DELAY:
            raise ScheduleError("too_short", text.strip())
        if delta > MAX_DELAY:
            raise ScheduleError("too_long", text.strip())
        return Delay(delta)
    raise ScheduleError("unknown", text.strip())


def format_schedule(schedule: Schedule) -> str:
    """The canonical written form (`parse_schedule` reads it back)."""
    if isinstance(schedule, Delay):
        return format_duration(schedule.delta)
    if isinstance(schedule, DaysUsual):
        return f"+{schedule.days}d usual {schedule.fallback.strftime('%H:%M')}"
    at = schedule.at.strftime("%H:%M")
    return f"tomorrow {at}" if schedule.days == 1 else f"+{schedule.days}d {at}"


def describe(schedule: Schedule, language: str = "pt-BR") -> str:
    """The schedule in words, for people."""
    pt = language != "en"
    if isinstance(schedule, Delay):
        parts = []
        total = int(schedule.delta.total_seconds())
        for size, one, many in (
            (86400, ("dia", "day"), ("dias", "days")),
            (3600, ("hora", "hour"), ("horas", "hours")),
            (60, ("minuto", "minute"), ("minutos", "minutes")),
        ):
            amount, total = divmod(total, size)
            if amount:
                word = (one if amount == 1 else many)[0 if pt else 1]
                parts.append(f"{amount} {word}")
        joined = " e ".join(parts) if pt else " and ".join(parts)
        return f"{joined} depois" if pt else f"{joined} later"
    if isinstance(schedule, DaysUsual):
        fb = schedule.fallback.strftime("%H:%M")
        if schedule.days == 1:
            when = "amanhã" if pt else "tomorrow"
        else:
            when = f"{schedule.days} dias depois" if pt else f"{schedule.days} days later"
        if pt:
            return f"{when}, no horário habitual do contato (sem histórico: às {fb})"
        return f"{when}, at the contact's usual hour (without enough history: at {fb})"
    at = schedule.at.strftime("%H:%M")
    if schedule.days == 1:
        return f"amanhã às {at}" if pt else f"tomorrow at {at}"
    return f"{schedule.days} dias depois, às {at}" if pt else f"{schedule.days} days later at {at}"


def zone(name: str) -> ZoneInfo:
    """An IANA time zone; raise ScheduleError("zone") for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError("zone", name) from exc


def resolve_local(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time: a time in a DST gap moves to the end of the gap,
    an ambiguous one takes its first occurrence."""
    wall = datetime.combine(day, at)
    for _ in range(24 * 60):
        local = wall.replace(tzinfo=tz, fold=0)
        back = local.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        if back == wall:
            return local.astimezone(UTC)
        wall += timedelta(minutes=1)  # inside a gap: walk to the first wall time that exists
    raise AssertionError("no valid local time within a day")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Local hours [start, end) on the allowed weekdays (0 = Monday)."""

    start: time
    end: time
    weekdays: frozenset[int] = frozenset(range(7))


def parse_window(start: str, end: str, weekdays: list[int] | None = None) -> SendWindow:
    s, e = parse_time(start), parse_time(end)
    if e <= s:
        raise ScheduleError("window", f"{start}-{end}")
    days = frozenset(weekdays if weekdays is not None else range(7))
    if not days or not days <= set(range(7)):
        raise ScheduleError("window", f"weekdays {sorted(days)}")
    return SendWindow(s, e, days)


def hold_to_window(due: datetime, window: SendWindow | None, tz: ZoneInfo) -> datetime:
    """The first allowed instant at or after `due`."""
    if window is None:
        return due
    day = due.astimezone(tz).date()
    for offset in range(8):
        current = day + timedelta(days=offset)
        if current.weekday() not in window.weekdays:
            continue
        opens, closes = (
            resolve_local(current, window.start, tz),
            resolve_local(current, window.end, tz),
        )
        if due < opens:
            return opens
        if due < closes:
            return due
    raise AssertionError("a window with a weekday always opens within a week")  # pragma: no cover


def window_close(at: datetime, window: SendWindow, tz: ZoneInfo) -> datetime | None:
    """When the window `at` falls in closes (None when `at` is outside it)."""
    day = at.astimezone(tz).date()
    if day.weekday() not in window.weekdays:
        return None
    opens, closes = resolve_local(day, window.start, tz), resolve_local(day, window.end, tz)
    return closes if opens <= at < closes else None


def next_due(
    schedule: Schedule,
    anchor: datetime,
    tz: ZoneInfo,
    window: SendWindow | None = None,
    profile: HourProfile | None = None,
) -> datetime:
    """When a step is due: after the anchor (the episode start, or the previous step's send)."""
    return due_and_source(schedule, anchor, tz, window, profile)[0]


def due_and_source(
    schedule: Schedule,
    anchor: datetime,
    tz: ZoneInfo,
    window: SendWindow | None = None,
    profile: HourProfile | None = None,
) -> tuple[datetime, str]:
    """`next_due`, and where its wall-clock time came from: `profile` (the contact's usual
    hour), `fallback` (a usual-hour step whose profile is too thin) or `fixed` (any other
    form). A usual hour is chosen among the hours the send window lets a step start in."""
    if isinstance(schedule, Delay):
        return hold_to_window(anchor + schedule.delta, window, tz), "fixed"
    day = anchor.astimezone(tz).date() + timedelta(days=schedule.days)
    if isinstance(schedule, DaysAt):
        return hold_to_window(resolve_local(day, schedule.at, tz), window, tz), "fixed"
    hours = window_hours(window.start, window.end) if window is not None else None
    hour = None if profile is None else profile.usual_hour(day, tz, hours)
    at, source = (schedule.fallback, "fallback") if hour is None else (time(hour), "profile")
    return hold_to_window(resolve_local(day, at, tz), window, tz), source
