"""What happens when a contact goes quiet: the one timer per subject fires here.

Each feature looks at the silence and either acts (once per silence: its effects carry
dedup keys) or says when it next wants to look. The earliest of those becomes the follow-up
timer, under the same key and version: any new activity replaces it.

One voice: while a timeout's stages run or a human has the conversation, recovery waits;
its threshold counts from the later of the last activity, the timeout's end and the close.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

import structlog
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    Table,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from reengage import metrics
from reengage.adapters.db.models import Bot, Contact, Conversation, Episode
from reengage.adapters.db.sets import (
    Rows,
    among,
    insert_many,
    on_postgres,
    recordset,
    recordset_params,
    write_changes,
)
from reengage.adapters.db.types import UTCDateTime
from reengage.domain import event as ev
from reengage.domain import inactivity
from reengage.domain.activity import ConversationStatus
from reengage.domain.bot_state import halted
from reengage.domain.timer import Purpose, Timer
from reengage.events.outbox import emit_for_episode
from reengage.ports import ActivityStore
from reengage.services.config_cache import ConfigBatch, ConfigCache
from reengage.services.event_log import NewEvent, append_events
from reengage.services.record_activity import Record
from reengage.silence import episodes
from reengage.silence.episodes import Started, step_timer
from reengage.silence.inactivity import (
    Detected,
    detect_inactivity,
    pending_inactivity_timers,
    record_detections,
)
from reengage.silence.live_campaign import LiveCampaign, live_campaign
from reengage.silence.timeout import TimeoutDeps, run_timeout
from reengage.timers.handler import FollowUps, Outcome

log = structlog.get_logger(__name__)


def latest_conversation(session: Session, bot_id: int, user_id: str) -> Conversation | None:
    """The subject's newest conversation (open, or the one just closed), locked for this
    transaction."""
    return session.scalar(
        select(Conversation)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Contact.bot_id == bot_id, Contact.external_id == user_id)
        .order_by(Conversation.id.desc())
        .limit(1)
        .with_for_update()
    )


def latest_conversations(
    session: Session, subjects: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], tuple[Conversation, Contact]]:
    """Each subject's newest conversation and its contact, the conversations locked (in id
    order, so that two batches never wait on each other crosswise). Only the newest is read
    and locked, however many closed ones a contact has behind it: their ids are found first
    (one aggregate over the subjects' conversations), then the rows by id."""
    if not subjects:
        return {}
    if on_postgres(session):  # one statement text whatever the batch, built once
        values = [{"bot_id": b, "external_id": u} for b, u in subjects]
        params = recordset_params(("bot_id", "external_id"), values)
        rows = session.execute(_latest_on_postgres(), params).tuples()
    else:
        pairs = tuple_(_OWNER.c.bot_id, _OWNER.c.external_id).in_(list(subjects))
        rows = session.execute(_latest(pairs)).tuples()
    return {(contact.bot_id, contact.external_id): (conv, contact) for conv, contact in rows}


_NEWER = cast(Table, Conversation.__table__).alias("newer")
_OWNER = cast(Table, Contact.__table__).alias("owner")


def _latest(*subjects: ColumnElement[bool]) -> Select[tuple[Conversation, Contact]]:
    """`latest_conversations`' statement for the subjects that `subjects` select."""
    newest = (
        select(func.max(_NEWER.c.id))
        .join(_OWNER, _OWNER.c.id == _NEWER.c.contact_id)
        .where(*subjects)
        .group_by(_NEWER.c.contact_id)
    )
    return (
        select(Conversation, Contact)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.id.in_(newest))
        .order_by(Conversation.id)
        .with_for_update(of=Conversation)
    )


@cache
def _latest_on_postgres() -> Select[tuple[Conversation, Contact]]:
    """PostgreSQL: the subjects as a `recordset` (one object: its cache key is computed once)."""
    keys = recordset(bot_id=BigInteger(), external_id=String())
    return _latest(_OWNER.c.bot_id == keys["bot_id"], _OWNER.c.external_id == keys["external_id"])


@dataclass(slots=True)
class SilencesSeen:
    """What a batch of silences reads once: bots and contacts (held here, so that the
    session's identity map, which holds its objects weakly, answers `session.get` for them),
    each bot's live campaign, each contact's latest episode (seq, started_at)."""

    latest: dict[int, tuple[int, datetime]]
    held: list[object]
    config: ConfigBatch = field(default_factory=ConfigBatch)
    started: list[Started] = field(default_factory=list)

    @classmethod
    def load(
        cls,
        session: Session,
        found: Sequence[tuple[Conversation, Contact]],
        config: ConfigBatch | None = None,
    ) -> SilencesSeen:
        bots = session.scalars(  # unscoped: the bots of conversations a timer names
            select(Bot).where(Bot.id.in_({conv.bot_id for conv, _ in found}))
        ).all()
        contacts = {contact.id for _, contact in found}
        newest = (
            select(func.max(Episode.id))
            .where(among(session, Episode.contact_id, contacts))
            .group_by(Episode.contact_id)
        )
        latest = session.execute(  # unscoped: the contacts of conversations a timer names
            select(Episode.contact_id, Episode.seq, Episode.started_at).where(
                Episode.id.in_(newest)
            )
        ).tuples()
        held: list[object] = [*bots, *(contact for _, contact in found)]
        latest_of = {contact: (seq, at) for contact, seq, at in latest}
        return cls(latest_of, held, config or ConfigBatch())

    def write(self, session: Session, now: datetime) -> None:
        """Insert the episodes this batch started (one statement) and give each its first
        step's timer and its `recovery_episode_started` event (one statement)."""
        session.flush()
        if not self.started:
            return
        table: Any = Episode.__table__
        made = insert_many(
            session,
            table,
            [s.row for s in self.started],
            returning=[table.c.contact_id, table.c.seq, table.c.id],
        ).tuples()
        ids = {(contact, seq): episode for contact, seq, episode in made}
        events = []
        for s in self.started:
            episode = ids[s.row["contact_id"], s.row["seq"]]
            s.follow.timers.append(step_timer(episode, s.row["next_due_at"]))
            log.debug("recovery.episode.started", episode_id=episode, holdout=s.row["holdout"])
            key = f"recovery:{episode}"
            detail = {"episode": episode}
            events.append(NewEvent(s.conv, "recovery_episode_started", key, now, detail=detail))
        append_events(session, events)
        for s in self.started:  # a transient copy of the row (never added to the session)
            episode = Episode(id=ids[s.row["contact_id"], s.row["seq"]], **s.row)
            emit_for_episode(
                session, episode, ev.EventType.EPISODE_STARTED, dedup_key="started", now=now
            )
        metrics.EPISODES_STARTED.inc(len(self.started))
        self.started.clear()

    def live_campaign(self, session: Session, org_id: int, bot_id: int) -> LiveCampaign | None:
        return self.config.get(org_id, ("campaign", bot_id), lambda: live_campaign(session, bot_id))


def _write_dues(session: Session, dues: dict[int, datetime | None]) -> None:
    """When each conversation's silence is looked at next, in one statement."""
    if not dues:
        return
    table: Any = Conversation.__table__
    rows = Rows(session, id=BigInteger(), due=UTCDateTime())
    stmt = update(table).where(table.c.id == rows["id"]).values(inactivity_due_at=rows["due"])
    if on_postgres(session):  # the rows found by their ids, not by a join PostgreSQL may scan
        stmt = stmt.where(among(session, table.c.id, list(dues)))
    rows.execute(stmt, [{"id": conv, "due": due} for conv, due in dues.items()])


@dataclass(frozen=True, slots=True)
class SilenceHandler:
    """The `inactivity` timer of a subject (bot + user)."""

    sessions: sessionmaker[Session]
    activity: ActivityStore
    default_threshold: timedelta
    language: str
    record: Record
    config: ConfigCache = field(default_factory=lambda: ConfigCache(None))
    purpose: str = Purpose.INACTIVITY
    queue: str = "timers"

    def handle(self, timer: Timer, now: datetime) -> Outcome:
        return self.handle_batch([timer], now)[0]

    def handle_batch(self, timers: Sequence[Timer], now: datetime) -> list[Outcome]:
        """The silences of many subjects in one transaction: their conversations locked and
        read together, with what the features look up (bots, campaigns, the latest episodes,
        policy levels); each silence decided alone."""
        subjects = [
            (int(t.payload["bot_id"] or 0), str(t.payload["user_id"]), int(t.payload["seq"] or 0))
            for t in timers
        ]
        current = []
        hot = self.activity.hot_seqs([(bot_id, user_id) for bot_id, user_id, _ in subjects])
        hot_seq = {(b, u): newest for (b, u, _), newest in zip(subjects, hot, strict=True)}
        for (bot_id, user_id, seq), newest in zip(subjects, hot, strict=True):
            if newest is not None and newest != seq:
                log.debug(
                    "silence.skipped", bot_id=bot_id, user_id=user_id, reason="newer_activity"
                )
                continue
            current.append((bot_id, user_id))
        self.activity.flush_subjects(current, now)  # before the transaction begins
        follows = []
        with self.sessions.begin() as session:
            found = latest_conversations(session, current)
            # The configuration's stamps after the rows that name it, before it is read.
            config = self.config.batch(conv.org_id for conv, _ in found.values())
            seen = SilencesSeen.load(session, list(found.values()), config)
            deps = TimeoutDeps(self.activity, self.language, self.record, config)
            live: list[tuple[Conversation, FollowUps, int, str, int]] = []
            for timer, (bot_id, user_id, seq) in zip(timers, subjects, strict=True):
                follows.append(follow := FollowUps())
                conv = found[bot_id, user_id][0] if (bot_id, user_id) in found else None
                if conv is None or conv.activity_seq != seq or conv.last_activity_at is None:
                    written = conv.activity_seq if conv is not None else None
                    deferred = int(timer.payload.get("deferred") or 0)
                    if inactivity.not_written_yet(hot_seq[bot_id, user_id], written, seq, deferred):
                        # Another process is writing this activity behind right now (taken
                        # from Redis, not committed yet): look again once it is written.
                        again = now + inactivity.WRITE_BEHIND_RETRY
                        follow.timers.append(
                            inactivity.inactivity_timer(bot_id, user_id, seq, again, deferred + 1)
                        )
                        log.debug("silence.deferred", bot_id=bot_id, user_id=user_id)
                        continue
                    log.debug("silence.skipped", bot_id=bot_id, user_id=user_id, reason="version")
                    continue
                bot = session.get_one(Bot, conv.bot_id)  # held: no statement
                stopped = halted(bot.disabled_at, bot.deleted_at)
                if stopped is not None:
                    # Left due: enabling the bot puts its timer back (see bot_lifecycle).
                    log.debug("silence.skipped", bot_id=bot_id, user_id=user_id, reason=stopped)
                    continue
                live.append((conv, follow, bot_id, user_id, seq))
            # Every open silence's inactivity first, in one statement: in each conversation's
            # log it precedes what the features then decide.
            detected = {
                conv.id: detect_inactivity(
                    conv, session.get_one(Bot, conv.bot_id), now, self.default_threshold
                )
                for conv, *_ in live
                if conv.status != ConversationStatus.CLOSED.value
            }
            record_detections(session, [d.event for d in detected.values() if d.event])
            dues: dict[int, datetime | None] = {}
            for conv, follow, bot_id, user_id, seq in live:
                wake = self._features(session, conv, now, follow, deps, seen, detected.get(conv.id))
                if wake != conv.inactivity_due_at:
                    dues[conv.id] = wake
                    # Written below with the batch's others, not by the unit of work.
                    set_committed_value(conv, "inactivity_due_at", wake)
                if wake is not None:
                    follow.timers.append(inactivity.inactivity_timer(bot_id, user_id, seq, wake))
            # What the features changed in the conversations (a timeout's stage, a close):
            # one UPDATE per kind of change, not the unit of work's one per row.
            write_changes(session, [conv for conv, _ in found.values()])
            seen.write(session, now)
            _write_dues(session, dues)
        return [follow.outcome() for follow in follows]

    def _features(
        self,
        session: Session,
        conv: Conversation,
        now: datetime,
        follow: FollowUps,
        deps: TimeoutDeps,
        seen: SilencesSeen,
        detected: Detected | None,
    ) -> datetime | None:
        """Run what is due; the earliest time any feature wants to look again."""
        assert conv.last_activity_at is not None
        wakes: list[datetime | None] = []
        since, recovery_may_start = conv.last_activity_at, True
        if conv.status != ConversationStatus.CLOSED.value:
            bot = session.get_one(Bot, conv.bot_id)
            wakes.append(detected.wake if detected is not None else None)
            timeout = run_timeout(session, conv, bot, now, deps, follow)
            wakes.append(timeout.wake)
            if timeout.pending or conv.status == ConversationStatus.HANDOFF.value:
                recovery_may_start = False  # someone else speaks to this contact
            elif timeout.ended_at is not None:
                since = max(since, timeout.ended_at)
        if conv.status == ConversationStatus.CLOSED.value and conv.closed_at is not None:
            since = max(since, conv.closed_at)
        if recovery_may_start:
            wakes.append(episodes.start_episode(session, conv, since, now, follow, seen))
        due = [w for w in wakes if w is not None]
        return min(due) if due else None

    def pending(
        self, session: Session, due_before: datetime | None, after_id: int, limit: int
    ) -> list[tuple[int, Timer]]:
        return pending_inactivity_timers(session, due_before, after_id, limit)
