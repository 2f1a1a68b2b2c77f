"""Activity in Redis first, written behind to the database.

Each subject (bot user) is a hash of max-merged clock fields; one Lua script per batch
deduplicates events by id (the subject's last few), merges clocks, moves the subject's one
inactivity timer in the timer store and marks the subject dirty. The scheduler's flush writes
dirty subjects to the database every second, so Redis never holds more than that much
activity alone; once a written subject has been quiet for the idle time (and no silence timer
waits for it), it leaves Redis, and comes back from the database when it is active again.
Redis memory thus follows the active subjects. The scripts are in `activity_scripts`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import uuid4

import orjson
import redis
import redis.asyncio
from sqlalchemy import Row, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.group_commit import GroupCommit, LoopGroupCommit
from reengage.adapters.db.inbound import (
    InboundOnLoop,
    inbound_rows,
    inbound_timers,
    insert_rows,
    rows_timers,
)
from reengage.adapters.db.models import Contact, Conversation
from reengage.adapters.db.subjects import write_subject_clocks
from reengage.adapters.redis import activity_scripts as lua
from reengage.adapters.redis.loop_calls import loop_calls
from reengage.adapters.redis.shards import SyncClient, script
from reengage.domain.activity import (
    MESSAGE_TYPES,
    ActivityEvent,
    BotPolicy,
    ConversationClock,
    ConversationStatus,
    EventType,
    RecordResult,
    SubjectClock,
    clock_fields,
    subject_key,
)
from reengage.domain.inactivity import next_wake
from reengage.domain.timer import Timer
from reengage.ports import ConfigStamp, StaleConfig
from reengage.timers.redis_store import RedisTimerStore

# Hash field of each clock attribute (short: a million subjects are held in memory).
FIELDS = {
    "last_activity_at": "la",
    "last_message_at": "lm",
    "last_inbound_message_at": "li",
    "last_message_from_contact_at": "lc",
    "last_message_from_agent_at": "lg",
    "window_expires_at": "we",
    "paid_at": "pa",
    "closed_at": "cl",
}


_CHUNK = 500
# The API's largest batch, in one script call on the event loop (about 20 ms of Redis).
_LOOP_BATCH = 1000
# Calls of at most this many events share a pipeline with concurrent requests' (their cost
# is mostly redis-py's per command); larger ones go at once, not behind the pipeline.
_PIPELINED = 16


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


class RedisActivityStore:
    """One shard of the hot state (`tag`: its hash tag, shared with its timer store; None:
    the names of a single instance). `owns`: whether a subject belongs here, when there are
    several shards (a restore seeds only its own)."""

    def __init__(
        self,
        client: SyncClient,
        timers: RedisTimerStore,
        sessions: sessionmaker[Session],
        *,
        namespace: str = "reengage",
        dedup_per_subject: int = 16,
        idle: timedelta = timedelta(hours=1),
        stuck_after: timedelta = timedelta(seconds=60),
        tag: str | None = None,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self._r = client
        self._timers = timers
        self._sessions = sessions
        self._ns = f"{{{namespace}:activity}}" if tag is None else f"{{{tag}}}:activity"
        self._owns = owns
        self._dirty = f"{self._ns}:dirty"
        self._inflight = f"{self._ns}:flushing"
        # Present while every subject of the database is also here; gone with the data.
        self._complete = f"{self._ns}:complete"
        self._cursor = f"{self._ns}:restoring"
        # Quiet subjects, scored by when they may leave Redis (clock milliseconds).
        self._idle_set = f"{self._ns}:idle"
        self._ring = dedup_per_subject
        self._idle = idle
        self._stuck = stuck_after
        self._record = script(client, lua.RECORD)
        self._take = script(client, lua.TAKE)
        self._change_status = script(client, lua.CHANGE_STATUS)
        self._seed_one = script(client, lua.SEED)
        self._advance = script(client, lua.ADVANCE)
        self._settle = script(client, lua.SETTLE)
        self._expire = script(client, lua.EXPIRE)
        # Concurrent requests' messages share a transaction (each still waits for its commit).
        self._store_inbound = GroupCommit(sessions, insert_rows)
        # On PostgreSQL they are stored on the event loop itself (`InboundOnLoop`), their
        # timers scheduled by that loop's client (the one that recorded their activity).
        self._loop_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, redis.asyncio.Redis
        ] = weakref.WeakKeyDictionary()
        on_loop = InboundOnLoop(sessions, self._schedule_on_loop)
        self._store_inbound_on_loop = LoopGroupCommit(
            sessions,
            insert_rows,
            lambda groups: timers.schedule(rows_timers(groups)),
            on_loop=on_loop if InboundOnLoop.usable(sessions) else None,
        )

    async def _schedule_on_loop(self, timers: list[Timer]) -> None:
        client = self._loop_clients.get(asyncio.get_running_loop())
        if client is None:
            await asyncio.to_thread(self._timers.schedule, timers)
        else:
            await self._timers.schedule_on_loop(client, timers)

    def _hash(self, subject: str) -> str:
        return f"{self._ns}:s:{subject}"

    def _stamp(self, org_id: int, stamp: ConfigStamp | None) -> list[str]:
        """The record script's stamp arguments: this shard's copy of the organization's
        stamp (`ConfigStamps` writes one per shard), and the value the caller read."""
        return [f"{self._ns}:config:{org_id}", stamp.value] if stamp else ["", ""]

    def record(
        self,
        org_id: int,
        policies: Mapping[int, BotPolicy],
        events: Sequence[ActivityEvent],
        now: datetime,
        stamp: ConfigStamp | None = None,
    ) -> RecordResult:
        ordered = sorted(events, key=lambda e: e.occurred_at)
        segments = _segments(ordered)
        said = any(e.inbound is not None for e in ordered)
        extra: list[str] = []
        if said or len(segments) > 1:
            # Checked once, before anything is written: the first script call can only see
            # its own segment, and what the messages say goes to the database first.
            subjects = list(dict.fromkeys(subject_key(e.bot_id, e.user_id) for e in ordered))
            self._script(org_id, stamp, subjects, [], now)
            stamp, segments_checked = None, True
        else:
            segments_checked = False
        # What the messages say is committed to the database before the activity is
        # accepted (a retry after a crash in between finds it there, once).
        inbound: list[Timer] = []
        if said:
            self._store_inbound(inbound_rows(org_id, ordered, now))
            inbound = inbound_timers(ordered, now)
        accepted = 0
        for segment in segments:
            payloads = [_payload(org_id, policies[e.bot_id], e) for e in segment]
            accepted += self._script(
                org_id, stamp, extra, payloads, now, check=not segments_checked
            )
            last = segment[-1]
            if last.type is EventType.CONVERSATION_STATUS:
                # Status changes are rare and shape the conversation history: written through
                # at once, so a close followed by new activity is two conversations, not one.
                self.flush_subject(last.bot_id, last.user_id, now)
        self._timers.schedule(inbound)
        return RecordResult(accepted, len(events) - accepted)

    async def record_on_loop(
        self,
        client: redis.asyncio.Redis,
        org_id: int,
        policies: Mapping[int, BotPolicy],
        events: Sequence[ActivityEvent],
        stamp: ConfigStamp | None,
        now: datetime,
    ) -> RecordResult | None:
        """The common batch in one script call on an event loop: no status change, every
        subject known here, the stamp current. None, with nothing applied, for any other: the
        caller records it with `record`.

        What messages say is stored once the script accepted their activity, before the
        caller answers: a retry after a crash in between finds the activity recorded (its
        event ids are duplicates) and stores the messages then, once. Concurrent requests'
        messages share a transaction, and their `inbound` timers one call."""
        if any(e.type is EventType.CONVERSATION_STATUS for e in events):
            return None
        if len(events) > _LOOP_BATCH:
            return None
        ordered = sorted(events, key=lambda e: e.occurred_at)
        said = inbound_rows(org_id, ordered, now)
        zkey, dkey = self._timers.keys
        args: list[str | int] = [self._ns, self._ring, zkey, dkey, self._timers.wake_channel]
        args += self._stamp(org_id, stamp)
        args += ["1", 0, *(_payload(org_id, policies[e.bot_id], e) for e in ordered)]
        try:
            # The one key names the shard's slot, where a cluster runs the script.
            calls = loop_calls(client) if len(events) <= _PIPELINED else None
            if calls is None:
                out = await client.evalsha(self._record.sha, 1, self._dirty, *args)  # type: ignore[misc, arg-type]
            else:  # with concurrent requests' calls, in one pipeline
                out = await calls.evalsha(self._record.sha, 1, self._dirty, *args)
        except redis.exceptions.NoScriptError:
            return None  # Redis restarted: `record` loads the script again
        accepted = int(out[0])
        if accepted < 0:
            return None
        if said:
            self._loop_clients[asyncio.get_running_loop()] = client
            await self._store_inbound_on_loop(said)
        return RecordResult(accepted, len(events) - accepted)

    def check(
        self, org_id: int, stamp: ConfigStamp | None, subjects: list[str], now: datetime
    ) -> None:
        """Raise StaleConfig when `stamp` is no longer current here; bring the named subjects
        from the database where Redis may lack them. Applies no activity."""
        self._script(org_id, stamp, subjects, [], now)

    def _script(
        self,
        org_id: int,
        stamp: ConfigStamp | None,
        subjects: list[str],
        payloads: list[str],
        now: datetime,
        *,
        check: bool = True,
    ) -> int:
        """One call of the record script; seeds what it names missing and calls again."""
        zkey, dkey = self._timers.keys
        head: list[str | int] = [self._ns, self._ring, zkey, dkey, self._timers.wake_channel]
        head += self._stamp(org_id, stamp)
        while True:
            out = self._record(
                keys=[self._dirty],
                args=[*head, "1" if check else "0", len(subjects), *subjects, *payloads],
            )
            code = int(out[0])
            if code == -1:
                raise StaleConfig(org_id)
            if code != -2:
                return code
            self._seed_missing([str(s) for s in out[1:]], now)
            check = False

    def _seed_missing(self, subjects: list[str], now: datetime) -> None:
        """Subjects unknown to Redis while it may lack some of the database's (it was emptied
        and is not restored yet) continue from the database's conversation, so versions,
        generations and status carry on."""
        keys = [_bot_user(s) for s in dict.fromkeys(subjects)]
        with self._sessions() as session:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                stmt = (
                    select(Contact.bot_id, Contact.external_id, Contact.org_id, Conversation)
                    .join(Conversation, Conversation.contact_id == Contact.id)
                    .where(tuple_(Contact.bot_id, Contact.external_id).in_(chunk))
                    .order_by(Conversation.id)
                )
                self._seed(session.execute(stmt), now)

    def _seed(self, rows: Iterable[Row[tuple[int, str, int, Conversation]]], now: datetime) -> int:
        """Write each subject's latest conversation to Redis, unless the subject is there."""
        latest: dict[tuple[int, str], tuple[int, Conversation]] = {}
        for bot_id, user_id, org_id, conv in rows:
            if self._owns is None or self._owns(subject_key(bot_id, user_id)):
                latest[(bot_id, user_id)] = (org_id, conv)
        # A cluster's pipeline cannot load a script it lacks: there, one call each.
        pipe = self._r.pipeline(transaction=False) if isinstance(self._r, redis.Redis) else None
        quiet = _ms(now + self._idle)
        for (bot_id, user_id), (org_id, conv) in latest.items():
            values: list[str] = [
                "seq", str(conv.activity_seq), "gen", str(conv.generation),
                "st", conv.status, "o", str(org_id),
            ]  # fmt: skip
            for attr, field in FIELDS.items():
                stamp = getattr(conv, attr, None)
                if stamp is not None:
                    values += [field, str(_ms(stamp))]
            subject = subject_key(bot_id, user_id)
            self._seed_one(
                keys=[self._hash(subject), self._idle_set],
                args=[quiet, self._ns, subject, *values],
                client=pipe,
            )
        if pipe is not None:
            pipe.execute()  # type: ignore[no-untyped-call]
        return len(latest)

    def restore(self, now: datetime, limit: int = 2000) -> bool:
        """After Redis was emptied: seed the next page of the database's subjects (those Redis
        lacks); True once all are here again, so that new subjects need no database read."""
        if self._r.exists(self._complete):
            return True
        cursor = cast(str | None, self._r.get(self._cursor))
        if cursor is None:
            cursor = f"{uuid4().hex}:0"
            if not self._r.set(self._cursor, cursor, nx=True):
                return False  # another scheduler began meanwhile
        run, after = cursor.rsplit(":", 1)
        with self._sessions() as session:
            contacts = session.execute(
                select(Contact.id, Contact.bot_id, Contact.external_id, Contact.org_id)
                .where(Contact.id > int(after))
                .order_by(Contact.id)
                .limit(limit)
            ).all()
            by_id = {c.id: c for c in contacts}
            convs = session.scalars(
                select(Conversation)
                .where(Conversation.contact_id.in_(by_id))
                .order_by(Conversation.id)
            )
            rows = [
                (by_id[conv.contact_id].bot_id, by_id[conv.contact_id].external_id,
                 by_id[conv.contact_id].org_id, conv)
                for conv in convs
            ]  # fmt: skip
            self._seed(cast(Iterable[Row[tuple[int, str, int, Conversation]]], rows), now)
        done = len(contacts) < limit
        following = "" if done else f"{run}:{contacts[-1].id}"
        # Fails when Redis was emptied again meanwhile (the cursor went with it): start over.
        moved = self._advance(
            keys=[self._cursor, self._complete], args=[cursor, following, now.isoformat()]
        )
        return done and bool(int(moved))

    def hot_seq(self, bot_id: int, user_id: str) -> int | None:
        value = self._r.hget(self._hash(subject_key(bot_id, user_id)), "seq")
        return int(str(value)) if value is not None else None

    def flush(self, now: datetime, limit: int = 2000) -> int:
        reply = self._take(
            keys=[self._dirty, self._inflight],
            args=[limit, _ms(now), _ms(now - self._stuck), self._hash(""), *_WRITTEN],
        )
        return self._write(dict(zip(reply[::2], reply[1::2], strict=True)), now)

    def unflushed(self) -> int:
        pipe = self._r.pipeline(transaction=False)
        pipe.scard(self._dirty)
        pipe.zcard(self._inflight)
        dirty, flushing = pipe.execute()
        return int(dirty) + int(flushing)

    def flush_subject(self, bot_id: int, user_id: str, now: datetime) -> None:
        subject = subject_key(bot_id, user_id)
        if self._r.srem(self._dirty, subject):
            self._r.zadd(self._inflight, {subject: _ms(now)})
            values = cast(list[str | None], self._r.hmget(self._hash(subject), list(_WRITTEN)))
            self._write({subject: values}, now)

    def hot_seqs(self, subjects: Sequence[tuple[int, str]]) -> list[int | None]:
        pipe = self._r.pipeline(transaction=False)
        for bot_id, user_id in subjects:
            pipe.hget(self._hash(subject_key(bot_id, user_id)), "seq")
        seqs = pipe.execute()
        return [int(seq) if seq is not None else None for seq in seqs]

    def flush_subjects(self, subjects: Sequence[tuple[int, str]], now: datetime) -> None:
        self._write(self.take_subjects(subjects, now), now)

    def take_subjects(
        self, subjects: Sequence[tuple[int, str]], now: datetime
    ) -> dict[str, Sequence[str | None]]:
        """The dirty ones of these subjects, moved in flight, each with its hash's fields
        `_WRITTEN`: to be written to the database, then `settle`d."""
        keys = list(dict.fromkeys(subject_key(bot_id, user_id) for bot_id, user_id in subjects))
        if not keys:
            return {}
        pipe = self._r.pipeline(transaction=False)
        for key in keys:
            pipe.srem(self._dirty, key)
        taken = pipe.execute()
        dirty = [key for key, was in zip(keys, taken, strict=True) if was]
        if not dirty:
            return {}
        pipe.zadd(self._inflight, dict.fromkeys(dirty, _ms(now)))
        for key in dirty:
            pipe.hmget(self._hash(key), list(_WRITTEN))
        data = pipe.execute()[1:]
        return dict(zip(dirty, data, strict=True))

    def _write(self, taken: dict[str, Sequence[str | None]], now: datetime) -> int:
        """Write the subjects' clocks in one transaction; then they are no longer in flight."""
        if not taken:
            return 0
        written = write_clocks(self._sessions, taken, now)
        self.settle(list(taken), now)
        return written

    def settle(self, subjects: Sequence[str], now: datetime) -> None:
        """Taken subjects are in the database: no longer in flight."""
        self._settle(
            keys=[self._dirty, self._inflight, self._idle_set],
            args=[self._ns, _ms(now + self._idle), *subjects],
        )

    def expire_idle(self, now: datetime, limit: int = 2000) -> int:
        """Drop up to `limit` subjects quiet for the idle time, written to the database and
        with no silence timer pending; return how many left. A returning one is reloaded
        from the database."""
        dkey = self._timers.keys[1]
        return int(
            self._expire(
                keys=[self._idle_set, self._dirty, self._inflight, dkey],
                args=[_ms(now), limit, int(self._idle.total_seconds() * 1000), self._ns],
            )
        )

    def change_status(
        self, bot_id: int, user_id: str, expected_seq: int, status: str, now: datetime
    ) -> bool:
        subject = subject_key(bot_id, user_id)
        zkey, dkey = self._timers.keys
        done = self._change_status(
            keys=[self._hash(subject), zkey, dkey],
            args=[expected_seq, status, _ms(now), f"inactivity:{subject}"],
        )
        return bool(int(done))

    def forget(self) -> None:
        """Drop all hot state (tests: a Redis restart without persistence)."""
        for key in self._r.scan_iter(f"{self._ns}:*"):
            self._r.delete(key)


def write_clocks(
    sessions: sessionmaker[Session], taken: dict[str, Sequence[str | None]], now: datetime
) -> int:
    """Write taken subjects' clocks (their fields `_WRITTEN`) to the database in one
    transaction; return how many."""
    items = [item for subject, values in taken.items() if (item := _subject_clock(subject, values))]
    if items:
        with sessions.begin() as session:
            write_subject_clocks(session, items, now)
    return len(items)


def _segments(events: list[ActivityEvent]) -> list[list[ActivityEvent]]:
    """Script calls of at most `_CHUNK` events, each status change ending one."""
    out: list[list[ActivityEvent]] = []
    segment: list[ActivityEvent] = []
    for event in events:
        segment.append(event)
        if event.type is EventType.CONVERSATION_STATUS or len(segment) == _CHUNK:
            out.append(segment)
            segment = []
    if segment:
        out.append(segment)
    return out


def _payload(org_id: int, policy: BotPolicy, e: ActivityEvent) -> str:
    threshold, after_close = policy.inactivity_threshold, policy.after_close
    fields = {FIELDS[k]: _ms(v) for k, v in clock_fields(e, policy.channel).items()}
    return orjson.dumps(
        {
            "s": subject_key(e.bot_id, e.user_id),
            "o": org_id,
            "e": e.event_id,
            "b": e.bot_id,
            "u": e.user_id,
            "t": _ms(e.occurred_at),
            "st": e.status.value if e.status else None,
            "f": fields,
            "th": int(threshold.total_seconds() * 1000) if threshold else 0,
            "ac": int(after_close.total_seconds() * 1000) if after_close else 0,
            "m": 1 if e.type in MESSAGE_TYPES else 0,
        },
    ).decode()


def _bot_user(subject: str) -> tuple[int, str]:
    bot, user = subject.split(":", 1)
    return int(bot), user


# The hash fields a flush writes to the database (not the event ids), read in this order.
_WRITTEN = ("st", "seq", "gen", "o", "th", "ac", *FIELDS.values())
_STATUS = {s.value: s for s in ConversationStatus}


def _subject_clock(subject: str, values: Sequence[str | None]) -> SubjectClock | None:
    """A taken subject's clock from its hash's fields `_WRITTEN` (absent ones: None); None
    for a hash without a version (gone meanwhile). A flush makes tens of thousands a second:
    each instant is converted once (a message moves several clocks to the same one), and the
    clock is built positionally (`FIELDS` follows `ConversationClock`'s order)."""
    status, seq, gen, org, threshold, after_close, *stamps = values
    if seq is None:
        return None
    bot, user = subject.split(":", 1)
    at: dict[str, datetime] = {}
    for v in stamps:
        if v and v not in at:
            at[v] = datetime.fromtimestamp(int(v) / 1000, UTC)
    clock = ConversationClock(
        _STATUS[status or "bot"], int(seq), *[at[v] if v else None for v in stamps]
    )
    wait, closed_wait = int(threshold or 0), int(after_close or 0)
    due = next_wake(
        clock,
        timedelta(milliseconds=wait) if wait else None,
        timedelta(milliseconds=closed_wait) if closed_wait else None,
    )
    return SubjectClock(int(org or 0), int(bot), user, int(gen or 0), clock, due)
