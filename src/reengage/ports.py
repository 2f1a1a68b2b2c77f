"""The protocols the core needs from the outside world."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO, Protocol

from reengage.domain.activity import ActivityEvent, BotPolicy, RecordResult
from reengage.domain.outbound import OutboundMessage, SendContext, SendOutcome
from reengage.domain.timer import Backlog, ClaimedTimer, Timer


class Clock(Protocol):
    """Tells the time; tests and demos control it."""

    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time (real waiting, scaled for fast clocks)."""
        ...

    def real_time(self) -> float:
        """Seconds in which platforms count their limits: the wall clock (a test's manual
        clock is its own)."""
        ...

    def real_seconds(self, delta: timedelta) -> float:
        """How long `delta` of this clock's time lasts in real time."""
        ...

    def sleep_real(self, seconds: float) -> None:
        """Wait `seconds` of real time, however fast this clock runs."""
        ...

    def at_real(self, moment: float) -> datetime:
        """This clock's instant when `real_time()` reaches `moment`."""
        ...


class Wakeups(Protocol):
    """Wakes a sleeping scheduler when a timer due sooner than it planned for is scheduled."""

    @property
    def complete(self) -> bool:
        """True when every process's schedules reach this listener (Redis); False when only
        this process's do (the SQL store), so a scheduler must still look now and then."""
        ...

    def arm(self) -> None:
        """Forget earlier news: call before reading `next_due`, then `wait`."""
        ...

    def wait(self, until: datetime, seconds: float) -> bool:
        """Wait up to `seconds` (real time); True as soon as a timer due before `until` was
        scheduled since `arm`."""
        ...

    def close(self) -> None:
        """Stop listening."""
        ...


class TimerStore(Protocol):
    """A durable index of pending timers: at most one per key, claimed under a lease."""

    def schedule(self, timers: Sequence[Timer]) -> None:
        """Create or replace each key's timer, unless the stored one has a newer version."""
        ...

    def schedule_missing(self, timers: Sequence[Timer]) -> int:
        """Add the timers whose key has no pending timer; return how many were added."""
        ...

    def cancel(self, keys: Sequence[str]) -> None:
        """Drop the pending timers of these keys."""
        ...

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[ClaimedTimer]:
        """Claim up to `limit` due timers; each comes back if not acked within `lease`."""
        ...

    def ack(self, claimed: Sequence[ClaimedTimer]) -> int:
        """Remove claimed timers that were not rescheduled meanwhile; return how many."""
        ...

    def get(self, key: str) -> Timer | None:
        """The pending timer of a key, if any."""
        ...

    def count(self) -> int:
        """How many timers are pending."""
        ...

    def next_due(self) -> datetime | None:
        """When the earliest pending timer becomes claimable."""
        ...

    def in_flight(self, now: datetime) -> int:
        """How many timers claimed for the first time are neither acknowledged nor past their
        lease. A timer claimed again (its lease ran out: its executor died, or its queue has
        no consumer) is not counted, so work stuck in one queue never holds back the rest."""
        ...

    def backlog(self, now: datetime) -> Backlog:
        """The timers claimable at `now` and not claimed: how many, and the oldest's time.
        Cheap enough to ask every second (an index range, not a scan of every timer)."""
        ...

    def wakeups(self) -> Wakeups:
        """A listener told when a timer earlier than the known next one is scheduled."""
        ...

    def needs_rebuild(self) -> bool:
        """True when the index lost its contents (e.g. Redis restarted empty)."""
        ...

    def mark_rebuilt(self) -> None:
        """Record that the index was rebuilt from the source of truth."""
        ...


@dataclass(frozen=True, slots=True)
class ConfigStamp:
    """Where an organization's configuration version is kept, and the version a caller's
    cached view of it (API keys, bots) was read at."""

    key: str
    value: str


class StaleConfig(Exception):
    """The organization's configuration changed since the caller's view was read."""


class ActivityStore(Protocol):
    """Where activity lands first: the database itself, or Redis with write-behind."""

    def record(
        self,
        org_id: int,
        policies: Mapping[int, BotPolicy],
        events: Sequence[ActivityEvent],
        now: datetime,
        stamp: ConfigStamp | None = None,
    ) -> RecordResult:
        """Apply new events (by id) atomically and move each subject's one inactivity timer;
        raise StaleConfig, applying nothing, when `stamp` is no longer current."""
        ...

    def restore(self, now: datetime, limit: int = 2000) -> bool:
        """Bring back a page of what the store lost (Redis emptied) from the database; True
        once nothing is missing."""
        ...

    def hot_seq(self, bot_id: int, user_id: str) -> int | None:
        """The subject's latest activity version if it may be newer than the database's."""
        ...

    def flush(self, now: datetime, limit: int = 2000) -> int:
        """Write recent activity to the database; return how many subjects were written."""
        ...

    def unflushed(self) -> int:
        """How many subjects have activity not yet written to the database (write-behind)."""
        ...

    def expire_idle(self, now: datetime, limit: int = 2000) -> int:
        """Let quiet subjects' hot state go once it is in the database and no silence timer
        needs it; return how many went (a returning subject is reloaded from the database)."""
        ...

    def flush_subject(self, bot_id: int, user_id: str, now: datetime) -> None:
        """Write one subject's recent activity to the database now."""
        ...

    def hot_seqs(self, subjects: Sequence[tuple[int, str]]) -> list[int | None]:
        """`hot_seq` for many (bot, user) subjects, in one round trip."""
        ...

    def flush_subjects(self, subjects: Sequence[tuple[int, str]], now: datetime) -> None:
        """`flush_subject` for many, in one transaction."""
        ...

    def change_status(
        self, bot_id: int, user_id: str, expected_seq: int, status: str, now: datetime
    ) -> bool:
        """Set the conversation's status only if no activity arrived since `expected_seq`
        (atomically against recording); False when the user was faster."""
        ...


class TimerExecutor(Protocol):
    """Runs claimed timers: in-process (embedded) or on Celery workers."""

    def submit(self, claimed: Sequence[ClaimedTimer], now: datetime) -> None:
        """Hand claimed timers over for execution; the executor acks after commit."""
        ...


class Channel(Protocol):
    """One bot on one platform. Every call returns an outcome value; none raises for the
    platform's refusals, so the delivery audit can record each of them."""

    def send(self, chat_id: str, message: OutboundMessage, context: SendContext) -> SendOutcome:
        """Send a text, media or template message; media comes back with its platform id."""
        ...

    def delete(
        self, chat_id: str, message_id: str, sent_at: datetime, now: datetime
    ) -> SendOutcome:
        """Delete a message the bot sent, where the platform allows it."""
        ...

    def chat_action(self, chat_id: str, action: str) -> SendOutcome:
        """Show "typing" / "uploading" in the chat."""
        ...


class ChannelProvider(Protocol):
    """Finds the channel adapter of a bot."""

    def channel_for(self, org_id: int, bot_id: int) -> Channel:
        """The channel of a bot, built from its decrypted credentials."""
        ...


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file the media store holds: its key (its name in the store), size and SHA-256."""

    key: str
    size: int
    sha256: str


class MediaTooLarge(ValueError):
    """The stream was longer than the store was told to accept; nothing was kept."""


class MediaStore(Protocol):
    """Where media bytes live (a directory by default), written by content hash."""

    def put(self, stream: BinaryIO, max_bytes: int) -> StoredFile:
        """Copy `stream` in chunks, hashing as it goes; visible whole or not at all (a file
        over `max_bytes` raises MediaTooLarge and leaves nothing). The same bytes twice are one
        file."""
        ...

    def path(self, key: str) -> str:
        """A local path to read the file from, in chunks (the channels stream it)."""
        ...
