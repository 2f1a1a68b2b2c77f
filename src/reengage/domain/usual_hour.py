"""A contact's usual hour: an hour-of-week activity profile learned from their own messages.

168 decayed counts, one per local hour of the week (Monday 00h = 0), in the contact's zone:
an observation at 19:40 local counts for 19h whatever the UTC offset, so a DST change moves
nothing. Counts halve every `HALF_LIFE`; one observation per hour of activity at most (a
burst of messages in the same hour counts once), so the profile says *when* the contact is
around, not how talkative they are.

Encoded in `ENCODED_BYTES` = 340 bytes: the hour of the last observation (UTC hours since
the epoch, 4 bytes) and 168 counts (unsigned 16-bit fixed point, 1/64 of an observation: at
most 1,023 observations per slot, far above what a half-life of four weeks lets accumulate).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

HOURS_OF_WEEK = 168
HALF_LIFE = timedelta(days=28)
MIN_OBSERVATIONS = 5.0  # decayed observations before the profile is trusted
_SCALE = 64
_HALF_LIFE_HOURS = HALF_LIFE.total_seconds() / 3600
_RENORMALIZE_HOURS = 100 * 24 * 28  # weights up to 2^100
_MAX_COUNT = 0xFFFF
_FORMAT = f">I{HOURS_OF_WEEK}H"
ENCODED_BYTES = struct.calcsize(_FORMAT)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_hour(instant: datetime) -> int:
    return int((instant - _EPOCH).total_seconds() // 3600)


def hour_of_week(instant: datetime, tz: ZoneInfo) -> int:
    """The local hour of the week of an instant (Monday 00h = 0)."""
    local = instant.astimezone(tz)
    return local.weekday() * 24 + local.hour


@dataclass(frozen=True, slots=True)
class HourProfile:
    """Decayed observation counts by local hour of week, as of `last_hour` (UTC epoch hours).

    Held as `weights` relative to `base_hour`: an observation at hour t weighs
    2^((t - base_hour) / half-life), so observing touches one slot; the counts as of the last
    observation are the weights scaled by 2^(-(last_hour - base_hour) / half-life)."""

    weights: tuple[float, ...] = (0.0,) * HOURS_OF_WEEK
    last_hour: int = 0  # 0: never observed
    base_hour: int = 0

    @property
    def _scale(self) -> float:
        return float(0.5 ** ((self.last_hour - self.base_hour) / _HALF_LIFE_HOURS))

    @property
    def counts(self) -> tuple[float, ...]:
        scale = self._scale
        return tuple(w * scale for w in self.weights)

    @property
    def total(self) -> float:
        return sum(self.weights) * self._scale

    def observe(self, instant: datetime, tz: ZoneInfo) -> HourProfile:
        """The profile with one more observation; an instant in (or before) the hour of the
        last one adds nothing (late or repeated messages, a flush seen twice)."""
        hour = _epoch_hour(instant)
        if hour <= self.last_hour:
            return self
        weights, base = self.weights, self.base_hour if self.last_hour else hour
        if hour - base > _RENORMALIZE_HOURS:  # keep the weights' range small
            weights, base = self.counts, self.last_hour
        slot = hour_of_week(instant, tz)
        weight = weights[slot] + 2.0 ** ((hour - base) / _HALF_LIFE_HOURS)
        changed = (*weights[:slot], weight, *weights[slot + 1 :])
        return HourProfile(changed, hour, base)

    def usual_hour(
        self,
        day: date,
        tz: ZoneInfo,
        hours: range | None = None,
        minimum: float = MIN_OBSERVATIONS,
    ) -> int | None:
        """The local hour the contact is most often active on `day`'s weekday, or None when the
        profile holds fewer than `minimum` observations. Each hour scores its count on that
        weekday twice plus its count over the whole week (a weekday alone is sparse); ties
        go to the earlier hour. `hours` limits the choice (the send window's)."""
        del tz  # the profile is already in local hours: the zone only names the day
        weights = self.weights
        if self.total < minimum:
            return None
        base = day.weekday() * 24
        best, best_score = None, 0.0
        for h in hours if hours is not None else range(24):
            score = 2 * weights[base + h] + sum(weights[h::24])
            if score > best_score:
                best, best_score = h, score
        return best

    def encode(self) -> bytes:
        scale = self._scale
        # Most slots are empty: skip their arithmetic (the same bytes as encoding every count).
        counts = (min(round(w * scale * _SCALE), _MAX_COUNT) if w else 0 for w in self.weights)
        return struct.pack(_FORMAT, self.last_hour, *counts)

    @classmethod
    def decode(cls, raw: bytes | None) -> HourProfile:
        """A profile from `encode`'s bytes; an empty profile from None or malformed bytes."""
        if not raw or len(raw) != ENCODED_BYTES:
            return cls()
        last_hour, *counts = struct.unpack(_FORMAT, raw)
        return cls(tuple(c / _SCALE for c in counts), last_hour, last_hour)


def learns_from(raw: bytes | None, instants: Iterable[datetime]) -> bool:
    """Whether observing these instants changes the profile encoded as `raw`: only one after
    the hour of its last observation does (what decoding and observing would tell, without
    decoding the counts)."""
    last = struct.unpack_from(">I", raw)[0] if raw and len(raw) == ENCODED_BYTES else 0
    return any(_epoch_hour(instant) > last for instant in instants)


def window_hours(start: time | None, end: time | None) -> range | None:
    """The whole local hours a send window [start, end) lets a step start in."""
    if start is None or end is None:
        return None
    first = start.hour + (1 if start.minute else 0)
    return range(first, end.hour if end.minute == 0 else end.hour + 1)
