"""Activity in Redis first, written behind to the database.

Each subject (bot user) is a hash of max-merged clock fields; one Lua script per batch
deduplicates events by id, merges clocks, moves the subject's one inactivity timer in the
timer store and marks the subject dirty. The scheduler's flush writes dirty subjects to the
database every second, so Redis never holds more than that much activity alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import redis
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.activity_store import write_subject_clocks
from reengage.adapters.db.inbound import insert_inbound
from reengage.adapters.db.models import Contact, Conversation
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

_RECORD = """
local ns, ttl, zkey, dkey, chan = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
local F = {'la', 'lm', 'li', 'lc', 'lg', 'we', 'pa', 'cl'}
local head = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')[2]
head = head and tonumber(head) or math.huge
local earliest = math.huge
local accepted = 0
for i = 6, #ARGV do
  local e = cjson.decode(ARGV[i])
  if redis.call('SET', ns .. ':ev:' .. e.o .. ':' .. e.e, '1', 'NX', 'EX', ttl) then
    accepted = accepted + 1
    local h = ns .. ':s:' .. e.s
    -- One read, one write: the whole clock is merged here.
    local cur = redis.call('HMGET', h, 'st', 'gen', 'seq', unpack(F))
    local st, gen, seq = cur[1] or 'bot', tonumber(cur[2] or '0'), tonumber(cur[3] or '0')
    local v = {}
    for j, f in ipairs(F) do v[f] = tonumber(cur[j + 3] or '0') end
    local cleared = false
    if st == 'closed' then
      -- Activity after a close belongs to the next conversation, with fresh clocks.
      gen, st, cleared = gen + 1, 'bot', true
      for _, f in ipairs(F) do if f ~= 'pa' then v[f] = 0 end end
    end
    if type(e.st) == 'string' then
      st, cleared = e.st, true
      if st == 'closed' then v.cl = e.t else v.cl = 0 end
    end
    -- A message older than the last activity moves its clocks, not the silence.
    local fresh = not (e.m == 1 and v.la > 0 and e.t < v.la)
    if fresh then seq = seq + 1 end
    for f, x in pairs(e.f) do if x > v[f] then v[f] = x end end
    local set = {'st', st, 'gen', gen, 'seq', string.format('%d', seq), 'o', e.o, 'th', e.th,
      'ac', e.ac}
    local gone = {}
    for _, f in ipairs(F) do
      if v[f] > 0 then
        set[#set + 1] = f
        set[#set + 1] = string.format('%d', v[f])
      elseif cleared then
        gone[#gone + 1] = f
      end
    end
    redis.call('HSET', h, unpack(set))
    if #gone > 0 then redis.call('HDEL', h, unpack(gone)) end
    redis.call('SADD', ns .. ':dirty', e.s)
    local tk = 'inactivity:' .. e.s
    local wake = 0
    if st ~= 'closed' and e.th > 0 and v.la > 0 then
      wake = v.la + e.th
    elseif st == 'closed' and e.ac > 0 and v.la > 0 then
      wake = math.max(v.la, v.cl) + e.ac
    end
    if not fresh then
      -- the timer of this silence stands
    elseif wake > 0 then
      local due = string.format('%d', wake)
      local payload = cjson.encode({bot_id = e.b, user_id = e.u, seq = seq})
      redis.call('ZADD', zkey, due, tk)
      earliest = math.min(earliest, wake)
      redis.call('HSET', dkey, tk, string.format('%d', seq) .. '|h' .. string.format('%d', seq) ..
        '|0|' .. due .. '|inactivity|' .. payload)
    else
      redis.call('ZREM', zkey, tk)
      redis.call('HDEL', dkey, tk)
    end
  end
end
if earliest < head then redis.call('PUBLISH', chan, string.format('%d', earliest)) end
return accepted
"""

# Which of these subject hashes are missing (1-based positions).
_MISSING = """
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 0 then out[#out + 1] = i end
end
return out
"""

# Move up to N dirty subjects into the in-flight set (scored by when), atomically.
_TAKE = """
local out = redis.call('SPOP', KEYS[1], tonumber(ARGV[1]))
for _, s in ipairs(out) do redis.call('ZADD', KEYS[2], ARGV[2], s) end
return out
"""

# Compare-and-set of a subject's status against its activity version.
_CHANGE_STATUS = """
local seq = redis.call('HGET', KEYS[1], 'seq')
if seq and tonumber(seq) ~= tonumber(ARGV[1]) then return 0 end
if not seq then return 1 end
redis.call('HSET', KEYS[1], 'st', ARGV[2])
if ARGV[2] == 'closed' then
  redis.call('HSET', KEYS[1], 'cl', ARGV[3])
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('HDEL', KEYS[3], ARGV[4])
end
return 1
"""

_CHUNK = 500


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _dt(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None


class RedisActivityStore:
    def __init__(
        self,
        client: redis.Redis,
        timers: RedisTimerStore,
        sessions: sessionmaker[Session],
        *,
        namespace: str = "reengage",
        dedup_ttl: timedelta = timedelta(hours=24),
        stuck_after: timedelta = timedelta(seconds=60),
    ) -> None:
        self._r = client
        self._timers = timers
        self._sessions = sessions
        self._ns = f"{{{namespace}:activity}}"
        self._dirty = f"{self._ns}:dirty"
        self._inflight = f"{self._ns}:flushing"
        self._ttl = int(dedup_ttl.total_seconds())
        self._stuck = stuck_after
        self._record = client.register_script(_RECORD)
        self._take = client.register_script(_TAKE)
        self._change_status = client.register_script(_CHANGE_STATUS)
        self._missing = client.register_script(_MISSING)

    def _hash(self, subject: str) -> str:
        return f"{self._ns}:s:{subject}"

    def record(
        self,
        org_id: int,
        policies: Mapping[int, BotPolicy],
        events: Sequence[ActivityEvent],
        now: datetime,
    ) -> RecordResult:
        ordered = sorted(events, key=lambda e: e.occurred_at)
        self._seed_missing(org_id, {(e.bot_id, e.user_id) for e in ordered})
        # What the messages say is committed to the database before the activity is
        # accepted (a retry after a crash in between finds it there, once).
        inbound: list[Timer] = []
        if any(e.inbound is not None for e in ordered):
            with self._sessions.begin() as session:
                inbound = insert_inbound(session, org_id, ordered, now)
        accepted = 0
        segment: list[ActivityEvent] = []
        for event in ordered:
            segment.append(event)
            if event.type is EventType.CONVERSATION_STATUS or len(segment) == _CHUNK:
                accepted += self._run(org_id, policies, segment, now)
                segment = []
        if segment:
            accepted += self._run(org_id, policies, segment, now)
        self._timers.schedule(inbound)
        return RecordResult(accepted, len(events) - accepted)

    def _run(
        self,
        org_id: int,
        policies: Mapping[int, BotPolicy],
        events: list[ActivityEvent],
        now: datetime,
    ) -> int:
        zkey, dkey = self._timers.keys
        args: list[str | int] = [self._ns, self._ttl, zkey, dkey, self._timers.wake_channel]
        for e in events:
            policy = policies[e.bot_id]
            threshold, after_close = policy.inactivity_threshold, policy.after_close
            fields = {FIELDS[k]: _ms(v) for k, v in clock_fields(e, policy.channel).items()}
            args.append(
                json.dumps(
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
                    separators=(",", ":"),
                )
            )
        accepted = int(self._record(args=args))
        last = events[-1]
        if last.type is EventType.CONVERSATION_STATUS:
            # Status changes are rare and shape the conversation history: written through at
            # once, so a close followed by new activity is two conversations, not one.
            self.flush_subject(last.bot_id, last.user_id, now)
        return accepted

    def _seed_missing(self, org_id: int, subjects: set[tuple[int, str]]) -> None:
        """A subject unknown to Redis (new, or Redis restarted empty) continues from the
        database's conversation, so versions, generations and status carry on."""
        keys = list(subjects)
        hashes = [self._hash(subject_key(bot_id, user_id)) for bot_id, user_id in keys]
        missing = [keys[int(i) - 1] for i in self._missing(keys=hashes)]
        if not missing:
            return
        with self._sessions() as session:
            for start in range(0, len(missing), _CHUNK):
                self._seed(session, org_id, missing[start : start + _CHUNK])

    def _seed(self, session: Session, org_id: int, chunk: list[tuple[int, str]]) -> None:
        stmt = (
            select(Contact.bot_id, Contact.external_id, Conversation)
            .join(Conversation, Conversation.contact_id == Contact.id)
            .where(tuple_(Contact.bot_id, Contact.external_id).in_(chunk))
            .order_by(Conversation.id)
        )
        latest: dict[tuple[int, str], Conversation] = {}
        for bot_id, user_id, conv in session.execute(stmt):
            latest[(bot_id, user_id)] = conv
        pipe = self._r.pipeline(transaction=False)
        for (bot_id, user_id), conv in latest.items():
            h = self._hash(subject_key(bot_id, user_id))
            values: dict[str, object] = {
                "seq": conv.activity_seq,
                "gen": conv.generation,
                "st": conv.status,
                "o": org_id,
            }
            for attr, field in FIELDS.items():
                stamp = getattr(conv, attr, None)
                if stamp is not None:
                    values[field] = _ms(stamp)
            for field, value in values.items():
                pipe.hsetnx(h, field, str(value))
        pipe.execute()  # type: ignore[no-untyped-call]

    def hot_seq(self, bot_id: int, user_id: str) -> int | None:
        value = self._r.hget(self._hash(subject_key(bot_id, user_id)), "seq")
        return int(str(value)) if value is not None else None

    def flush(self, now: datetime, limit: int = 2000) -> int:
        self._requeue_stuck(now)
        subjects = [
            str(s) for s in self._take(keys=[self._dirty, self._inflight], args=[limit, _ms(now)])
        ]
        return self._write(subjects, now)

    def flush_subject(self, bot_id: int, user_id: str, now: datetime) -> None:
        subject = subject_key(bot_id, user_id)
        if self._r.srem(self._dirty, subject):
            self._r.zadd(self._inflight, {subject: _ms(now)})
            self._write([subject], now)

    def _write(self, subjects: list[str], now: datetime) -> int:
        if not subjects:
            return 0
        pipe = self._r.pipeline(transaction=False)
        for subject in subjects:
            pipe.hgetall(self._hash(subject))
        items = [
            item
            for subject, data in zip(subjects, pipe.execute(), strict=True)  # type: ignore[no-untyped-call]
            if (item := _subject_clock(subject, data))
        ]
        if items:
            with self._sessions.begin() as session:
                write_subject_clocks(session, items, now)
        self._r.zrem(self._inflight, *subjects)
        return len(items)

    def _requeue_stuck(self, now: datetime) -> None:
        """Subjects taken by a flusher that died before committing go back to dirty."""
        cutoff = _ms(now - self._stuck)
        stuck = cast(list[str], self._r.zrangebyscore(self._inflight, "-inf", cutoff))
        if stuck:
            self._r.sadd(self._dirty, *stuck)
            self._r.zrem(self._inflight, *stuck)

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


def _subject_clock(subject: str, data: dict[str, str]) -> SubjectClock | None:
    if not data or "seq" not in data:
        return None
    bot, user = subject.split(":", 1)
    clock = ConversationClock(
        status=ConversationStatus(data.get("st", "bot")),
        activity_seq=int(data["seq"]),
        **{attr: _dt(data.get(field)) for attr, field in FIELDS.items()},
    )
    threshold, after_close = int(data.get("th") or 0), int(data.get("ac") or 0)
    due = next_wake(
        clock,
        timedelta(milliseconds=threshold) if threshold else None,
        timedelta(milliseconds=after_close) if after_close else None,
    )
    return SubjectClock(int(data.get("o", 0)), int(bot), user, int(data.get("gen", 0)), clock, due)
