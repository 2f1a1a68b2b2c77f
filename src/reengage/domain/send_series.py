"""A campaign's sends day by day: how many went out, failed or were skipped (the delivery
rate), and how late the sent ones left after their due time (the timers' lateness)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    sent: int
    failed: int
    skipped: int
    late_p50: timedelta | None  # None: nothing sent that day
    late_max: timedelta | None

    @property
    def rate(self) -> float | None:
        """Sent over everything that ended (None: nothing ended)."""
        ended = self.sent + self.failed + self.skipped
        return self.sent / ended if ended else None


def daily(rows: Iterable[tuple[str, datetime, datetime | None]]) -> list[Day]:
    """Days (UTC, by due time) of (status, due at, sent at) rows; still pending rows count in
    no figure."""
    counts: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    lateness: dict[date, list[timedelta]] = defaultdict(list)
    for status, due_at, sent_at in rows:
        day = due_at.date()
        counts[day][status] += 1
        if status == "sent" and sent_at is not None:
            lateness[day].append(max(timedelta(0), sent_at - due_at))
    out = []
    for day in sorted(counts):
        late = sorted(lateness[day])
        out.append(
            Day(
                day,
                counts[day]["sent"],
                counts[day]["failed"],
                counts[day]["skipped"],
                late[(len(late) - 1) // 2] if late else None,
                late[-1] if late else None,
            )
        )
    return out
