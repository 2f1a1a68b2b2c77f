"""One attempt to send a delivery (see docs/deliveries.md).

It claims the row (`sending`, committed), asks the platform — whose adapter marks the
request in flight right before it leaves — and commits the answer. A crash before the claim
leaves `scheduled`, before the mark `sending` without `requested_at`: both are sent by the
next run, once. Only a request that left without an answer is ambiguous.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

import structlog
from sqlalchemy import select
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.db.models import (
    Bot,
    Contact,
    Conversation,
    Delivery,
    MediaAsset,
    MediaUpload,
)
from reengage.adapters.db.sets import among, write_changes
from reengage.delivery.auto_delete import delete_timer
from reengage.delivery.outbox import DeliveryRequest, delivery_timer, enqueue
from reengage.delivery.outcome import (
    FINAL,
    Retry,
    claim,
    load_for_claim,
    load_for_log,
    log_outcome,
    log_outcomes,
    record,
    release_next,
)
from reengage.delivery.request_writes import Answer, RequestWrites
from reengage.domain.outbound import (
    Failed,
    Media,
    OutboundMessage,
    SendContext,
    SendOutcome,
    Sent,
    Superseded,
    message_from_json,
)
from reengage.domain.timer import Timer
from reengage.metrics import delivery_settled
from reengage.ports import (
    ActivityStore,
    Channel,
    ChannelProvider,
    Clock,
    MediaStore,
    TimerStore,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivery_id: int
    status: str
    reason: str | None = None
    channel_message_id: str | None = None
    # A `scheduled` result is tried again at `retry_at`, in its reserved platform slot if any.
    retry_at: datetime | None = None
    slot_at: float | None = None
    blocked: bool = False


def retry_timer(result: DeliveryResult, queue: str | None = None) -> Timer | None:
    """The timer that tries a result again, if it is to be tried again."""
    if result.retry_at is None:
        return None
    return delivery_timer(result.delivery_id, result.retry_at, slot_at=result.slot_at, queue=queue)


class SendPool:
    """Threads that send a batch's bots side by side: requests wait on the network and the
    database, not on the processor. Made in the process that uses them (a forked worker gets
    threads of its own); `size` 1 sends one after another (SQLite's single writer)."""

    def __init__(self, size: int = 1) -> None:
        self.size = size
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def each_bot(self, work: Callable[[Prepared], None], items: Sequence[Prepared]) -> None:
        """`work` on every item: one bot's in order (its platform's rate limit counts them
        as they arrive, so they never overtake each other), the bots side by side. The first
        error is raised once every bot's work has ended (none keeps running behind the
        caller's back)."""
        by_bot: dict[int, list[Prepared]] = {}
        for item in items:
            by_bot.setdefault(item.bot_id, []).append(item)
        if self.size <= 1 or len(by_bot) <= 1:
            for item in _interleaved(list(by_bot.values())):
                work(item)
            return

        def in_turn(queue: list[Prepared]) -> None:
            for item in queue:
                work(item)

        # The longest queues first: the batch ends when its last bot's queue does.
        queues = sorted(by_bot.values(), key=len, reverse=True)
        done, _ = wait([self._executor().submit(in_turn, q) for q in queues])
        for future in done:
            future.result()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="send")
                self._pid = os.getpid()
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.shutdown(wait=True)
            self._pool = None


@dataclass(frozen=True, slots=True)
class SendDeps:
    sessions: sessionmaker[Session]
    channels: ChannelProvider
    activity: ActivityStore | None = None
    clock: Clock | None = None
    pool: SendPool = field(default_factory=SendPool)
    media: MediaStore | None = None  # where uploaded media files are read from
    writes: RequestWrites | None = None  # marks and answers shared by concurrent sends


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt's result, and the timers it sets going: the block after it, the
    auto-delete of what it sent; the keys it stops (a blocked contact's)."""

    result: DeliveryResult
    timers: list[Timer] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)


def deliver(
    sessions: sessionmaker[Session],
    channels: ChannelProvider,
    timers: TimerStore,
    request: DeliveryRequest,
    now: datetime,
    activity: ActivityStore | None = None,
    clock: Clock | None = None,
    media: MediaStore | None = None,
) -> DeliveryResult:
    """Enqueue and send at once (at most once per `dedup_key`); what has to wait (pacing, a
    429, the minimum gap) is left to its delivery timer."""
    with sessions.begin() as session:
        delivery_id = enqueue(session, request, now)
    deps = SendDeps(sessions, channels, activity, clock, media=media)
    attempt = send(deps, delivery_id, now, may_defer=True)
    retry = retry_timer(attempt.result)
    timers.cancel(attempt.cancel)
    timers.schedule(attempt.timers + ([retry] if retry is not None else []))
    return attempt.result


@dataclass(frozen=True, slots=True)
class Want:
    """A delivery to attempt, and its reserved send slot if a hand-back holds one."""

    delivery_id: int
    slot_at: float | None = None


def send(
    deps: SendDeps,
    delivery_id: int,
    now: datetime,
    *,
    may_defer: bool = False,
    slot_at: float | None = None,
) -> Attempt:
    """Send an enqueued delivery; every outcome lands on its row. What must wait comes back
    as a result with `retry_at`: a pacing hand-back (reason `paced`, with `may_defer`), a
    platform's retryable refusal (`rate_limited`, `server_error`, ...), a hold for the minimum
    gap between proactive messages (`held_min_gap`), a request still in flight."""
    return send_many(deps, [Want(delivery_id, slot_at)], now, may_defer=may_defer)[0]


def send_many(
    deps: SendDeps, wants: Sequence[Want], now: datetime, *, may_defer: bool = False
) -> list[Attempt]:
    """`send` for many deliveries: claimed together (one transaction), then asked of their
    platforms side by side (`deps.pool`), each with its in-flight mark committed right before
    its request and its answer right after. One attempt per want, in order."""
    with deps.sessions.begin() as session:
        claimed = _prepare_many(session, wants, now, deps, may_defer)
    prepared = [i for i in claimed.values() if isinstance(i, Prepared)]
    bots = {item.bot_id: item.org_id for item in prepared}
    channels = {bot: deps.channels.channel_for(org, bot) for bot, org in bots.items()}
    recorded: dict[int, Attempt] = {}
    uploaded: dict[tuple[int, int], str] = {}  # (bot, asset) -> the platform's file id
    writes = _writes(deps)
    # With senders side by side, a plain answer is written while its bot's next request
    # leaves (`answer_later`); the batch ends once they are all committed.
    later: list[tuple[Prepared, Sent, Answer, Future[None]]] = []
    reminders: list[int] = []  # sent reminders, logged in their conversations once answered

    def settle(item: Prepared, outcome: SendOutcome, sent: Attempt | None) -> None:
        if sent is None:  # not plainly sent, or its row is gone: the general path decides
            sent = _record(deps, {item.delivery_id: item}, {item.delivery_id: outcome}, now)[
                item.delivery_id
            ]
        recorded[item.delivery_id] = sent

    def one(item: Prepared) -> None:
        _reuse_upload(item, uploaded)
        outcome = _request(deps, item, now, channels[item.bot_id])
        # Each answer is committed as soon as it can be: a crash loses only the answers not
        # yet recorded, each a request found marked and unanswered (ambiguous: sent again
        # only where its delivery allows it, `retry_ambiguous`).
        plain = _plainly_sent(item, outcome)
        if plain is not None and item.purpose == "reminder":
            reminders.append(item.delivery_id)  # its conversation's log: below, with others
        if plain is None:
            settle(item, outcome, None)
        elif deps.pool.size > 1:
            answer, written = writes.answer_later(item.delivery_id, now, plain.message_id)
            later.append((item, plain, answer, written))
        else:
            answer = writes.answer(item.delivery_id, now, plain.message_id)
            settle(item, plain, _sent(item, plain, answer, now))
        media = item.message.media
        if isinstance(outcome, Sent) and outcome.file_id and media and media.asset_id:
            uploaded.setdefault((item.bot_id, media.asset_id), outcome.file_id)

    try:
        deps.pool.each_bot(one, prepared)
    finally:
        wait([written for *_, written in later])
    for item, outcome, answer, written in later:
        written.result()  # the first error is raised, as from its sender
        settle(item, outcome, _sent(item, outcome, answer, now))
    _log_reminders(deps, reminders, now)
    attempts = []
    for want in wants:
        decided = claimed[want.delivery_id]
        if isinstance(decided, Settled):
            settled = decided.result
            if settled.status in FINAL:
                delivery_settled(
                    decided.purpose, decided.channel, decided.bot_id, settled.status, settled.reason
                )
            attempts.append(Attempt(settled, decided.released))
        else:
            attempts.append(recorded[want.delivery_id])
    return attempts


def _interleaved(queues: list[list[Prepared]]) -> list[Prepared]:
    """The bots in turn (one of each, then again), so that each bot's platform rate limit
    spaces its own sends while the others' go out, instead of the batch waiting on one bot."""
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def _reuse_upload(item: Prepared, uploaded: dict[tuple[int, int], str]) -> None:
    """A file this batch already uploaded for the bot goes by its file id, not uploaded again."""
    media = item.message.media
    if media is None or media.asset_id is None or media.file_id is not None:
        return
    file_id = uploaded.get((item.bot_id, media.asset_id))
    if file_id is not None:
        reused = Media(media.asset_id, file_id, None, None, media.filename, media.content_type)
        item.message = OutboundMessage(
            item.message.kind, item.message.text, reused, item.message.template
        )


def _record(
    deps: SendDeps,
    claimed: dict[int, Settled | Prepared],
    asked: dict[int, SendOutcome],
    now: datetime,
) -> dict[int, Attempt]:
    """The answers on their rows, in one transaction."""
    attempts: dict[int, Attempt] = {}
    superseded = [i for i, outcome in asked.items() if isinstance(outcome, Superseded)]
    for delivery_id in superseded:
        log.warning("delivery.superseded", delivery_id=delivery_id)
        attempts[delivery_id] = Attempt(DeliveryResult(delivery_id, "sending"))
    answered = sorted(set(asked) - set(superseded))
    if not answered:
        return attempts
    overtaken: set[int] = set()
    with deps.sessions.begin() as session:
        rows = _locked(session, answered)
        for delivery_id in answered:
            item, row = claimed[delivery_id], rows[delivery_id]
            assert isinstance(item, Prepared)
            outcome = asked[delivery_id]
            if not isinstance(outcome, Sent) and (
                row.status != "sending" or row.attempts != item.attempt
            ):
                # Another attempt took the row over while this one waited its turn in the
                # batch (ours never left: its in-flight mark would have kept the row ours).
                log.debug("delivery.superseded", delivery_id=delivery_id, status=row.status)
                attempts[delivery_id] = Attempt(DeliveryResult(delivery_id, row.status))
                overtaken.add(delivery_id)
                continue
            retry = record(session, row, item.message, outcome, now, deps.clock)
            log_outcome(session, row, now)
            after = release_next(session, row, now)
            result = _result(row, retry if isinstance(retry, Retry) else None)
            if result.status == "sent" and row.delete_after_s:
                after.append(delete_timer(row.id, now + timedelta(seconds=row.delete_after_s)))
            cancel = retry if isinstance(retry, list) else []
            attempts[delivery_id] = Attempt(result, after, cancel)
    for delivery_id in answered:
        result, row = attempts[delivery_id].result, rows[delivery_id]
        if delivery_id in overtaken:
            continue
        channel = claimed[delivery_id].channel
        delivery_settled(row.purpose, channel, row.bot_id, result.status, result.reason)
        # A send is a decision carried out (debug); a failure or a retry is news (info).
        log.log(
            logging.DEBUG if result.status == "sent" else logging.INFO,
            f"delivery.{result.status}",
            delivery_id=delivery_id,
            reason=result.reason,
            purpose=row.purpose,
            bot_id=row.bot_id,
        )
    return attempts


def _plainly_sent(item: Prepared, outcome: SendOutcome) -> Sent | None:
    """The common answer with nothing to write beside its own row (a reminder's line in
    its conversation's log is written after, `_log_reminders`): a message sent that uploaded
    no new file."""
    if not isinstance(outcome, Sent):
        return None
    media = item.message.media
    uploaded = media and media.asset_id and outcome.file_id and media.file_id is None
    return None if uploaded else outcome


def _log_reminders(deps: SendDeps, ids: Sequence[int], now: datetime) -> None:
    """The `reminder_sent` lines (and events out) of reminders whose answers are committed,
    in one transaction: their rows, conversations and contacts read in three statements, the
    lines written in one. A crash before it leaves their timers unacknowledged: run again,
    each finds its row sent and writes its line then (`_prepare_many`; once: the line's key)."""
    if not ids:
        return
    with deps.sessions.begin() as session:
        rows = session.scalars(
            select(Delivery).where(among(session, Delivery.id, ids)).order_by(Delivery.id)
        ).all()
        held = load_for_log(session, rows)  # `session.get` answers from memory
        log_outcomes(session, rows, now)
        del held


def _sent(item: Prepared, outcome: Sent, written: Answer, now: datetime) -> Attempt | None:
    """`_record` of a plainly sent message, its row written in one Core statement shared
    with the other send threads' answers (`written`): the sent row, the block that waited
    for it. None when the row is gone (the general path decides)."""
    if not written.found:
        return None
    after = [delivery_timer(written.follower, now)] if written.follower is not None else []
    if item.delete_after_s:
        after.append(delete_timer(item.delivery_id, now + timedelta(seconds=item.delete_after_s)))
    delivery_settled(item.purpose, item.channel, item.bot_id, "sent", None)
    log.debug(
        "delivery.sent", delivery_id=item.delivery_id, purpose=item.purpose, bot_id=item.bot_id
    )
    return Attempt(DeliveryResult(item.delivery_id, "sent", None, outcome.message_id), after)


def _locked(session: Session, ids: Sequence[int]) -> dict[int, Delivery]:
    """The delivery rows, locked in id order (two batches never wait on each other
    crosswise)."""
    rows = session.scalars(
        select(Delivery)
        .where(among(session, Delivery.id, ids))
        .order_by(Delivery.id)
        .with_for_update()
    )
    return {row.id: row for row in rows}


def _request(deps: SendDeps, prepared: Prepared, now: datetime, channel: Channel) -> SendOutcome:
    """Ask the platform; the adapter marks the request in flight right before it leaves."""
    context = replace(prepared.context, on_request=partial(_mark_requested, deps, prepared, now))
    try:
        return channel.send(prepared.chat_id, prepared.message, context)
    except Exception as exc:  # a bug, not a platform answer: what it means depends on the mark
        log.error("delivery.adapter_error", delivery_id=prepared.delivery_id, error=repr(exc))
        return Failed("adapter_error", not prepared.requested, detail=repr(exc)[:300])


def _mark_requested(deps: SendDeps, prepared: Prepared, now: datetime) -> bool:
    """The attempt that holds the claim marks its request in flight, committed, right before
    it leaves; False when a later run took the delivery over, or its bot was disabled or
    deleted since the claim (then it must not be sent; its next attempt skips it)."""
    prepared.requested = _writes(deps).mark(
        prepared.delivery_id, prepared.attempt, prepared.bot_id, now
    )
    return prepared.requested


def _writes(deps: SendDeps) -> RequestWrites:
    """The process's shared marks and answers, or this call's own (one writer, no sharing)."""
    return deps.writes if deps.writes is not None else RequestWrites(deps.sessions)


@dataclass(frozen=True, slots=True)
class Settled:
    """Decided without a request: skipped, held, or waiting for the block before."""

    result: DeliveryResult
    released: list[Timer]
    purpose: str
    bot_id: int
    channel: str


@dataclass(slots=True)
class Prepared:
    """Claimed (`sending`, committed) by attempt `attempt`: what the platform is asked."""

    delivery_id: int
    attempt: int
    org_id: int
    bot_id: int
    chat_id: str
    message: OutboundMessage
    context: SendContext
    channel: str
    purpose: str
    delete_after_s: int | None
    requested: bool = False  # the in-flight mark was made


def _prepare_many(
    session: Session,
    wants: Sequence[Want],
    now: datetime,
    deps: SendDeps,
    may_defer: bool,
) -> dict[int, Settled | Prepared]:
    """Claim each row or settle it without a request. The rows, their contacts (locked when
    the message is proactive: the minimum gap is decided under that lock), conversations,
    episodes, bots and organizations are read in a few statements; each row is decided
    alone, in id order."""
    rows = _locked(session, sorted({w.delivery_id for w in wants}))
    missing = {w.delivery_id for w in wants} - set(rows)
    if missing:
        raise NoResultFound(f"no delivery {sorted(missing)}")
    held = load_for_claim(session, list(rows.values()))  # alive until every row is decided
    slots = {w.delivery_id: w.slot_at for w in wants}
    out: dict[int, Settled | Prepared] = {}
    for delivery_id, row in sorted(rows.items()):
        context = SendContext(
            now, None, may_defer, slots[delivery_id], idempotency_key=f"delivery_{delivery_id}"
        )
        contact = session.get_one(Contact, row.contact_id)
        channel = session.get_one(Bot, row.bot_id).channel  # held: no statement
        hold = claim(session, row, contact, now, deps.activity)
        if row.status != "sending" or hold is not None:  # settled, held, or still in flight
            log_outcome(session, row, now)
            released = release_next(session, row, now)
            out[delivery_id] = Settled(
                _result(row, hold), released, row.purpose, row.bot_id, channel
            )
            continue
        conversation = _conversation(session, row)
        out[delivery_id] = Prepared(
            row.id,
            row.attempts,
            row.org_id,
            row.bot_id,
            contact.external_id,
            _with_media(session, row, message_from_json(row.message), deps.media),
            replace(
                context,
                window_expires_at=conversation.window_expires_at if conversation else None,
            ),
            channel,
            row.purpose,
            row.delete_after_s,
        )
    # The claims and their contacts' last proactive message: one UPDATE per kind of change
    # (configuration rows are left to the flush, which tells the caches they changed).
    write_changes(session, [*rows.values(), *(o for o in held if isinstance(o, Contact))])
    del held
    return out


def _result(row: Delivery, retry: Retry | None = None) -> DeliveryResult:
    pending = row.status in ("scheduled", "sending")
    at = retry.at if retry and pending else None
    slot = retry.slot_at if retry and pending else None
    return DeliveryResult(
        row.id, row.status, row.reason, row.channel_message_id, at, slot, row.reason == "blocked"
    )


def _conversation(session: Session, row: Delivery) -> Conversation | None:
    return session.get(Conversation, row.conversation_id) if row.conversation_id else None


def _with_media(
    session: Session, row: Delivery, message: OutboundMessage, store: MediaStore | None
) -> OutboundMessage:
    media = message.media
    if media is None or media.asset_id is None:
        return message
    cached = session.get(MediaUpload, (row.bot_id, media.asset_id))
    asset = session.get_one(MediaAsset, media.asset_id)
    if asset.org_id != row.org_id:
        raise ValueError(f"media asset {asset.id} belongs to another organization")
    # Uploaded to this bot already: its file id. Otherwise the file in the media store,
    # streamed by the channel; an asset from before the store still has its bytes in its row.
    path = content = None
    if cached is None and asset.storage_key is not None:
        if store is None:
            raise ValueError(f"media asset {asset.id} is in the media store, and none is given")
        path = store.path(asset.storage_key)
    elif cached is None:
        content = asset.content
    resolved = Media(
        asset.id,
        cached.file_id if cached else None,
        None,
        content,
        asset.filename,
        asset.content_type,
        path,
    )
    return OutboundMessage(message.kind, message.text, resolved, message.template)
