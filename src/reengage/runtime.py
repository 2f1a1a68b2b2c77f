"""The composition root: builds the adapters the settings ask for and wires them together."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.channels.factory import build_channel, close_connections
from reengage.adapters.channels.telegram import TelegramChannel
from reengage.adapters.clock import AcceleratedClock, ManualClock, SystemClock
from reengage.adapters.crypto import Credentials
from reengage.adapters.db.activity_store import SqlActivityStore
from reengage.adapters.db.group_commit import GroupCommit, LoopGroupCommit
from reengage.adapters.db.loop_writes import dsn_of
from reengage.adapters.db.models import Bot
from reengage.adapters.db.session import make_engine, make_session_factory
from reengage.adapters.media_store import DirectoryMediaStore
from reengage.adapters.pacing import InMemoryPacer, Pacer, RedisPacer
from reengage.adapters.redis.activity_store import RedisActivityStore
from reengage.adapters.redis.config_stamps import ConfigStamps
from reengage.adapters.redis.sharded_activity import (
    ShardedActivityStore,
    redis_activity,
    redis_timers,
)
from reengage.adapters.redis.shards import Layout, connect
from reengage.config import Settings
from reengage.delivery.attempt import SendDeps, SendPool
from reengage.delivery.auto_delete import AutoDeleteHandler
from reengage.delivery.chat_action import ChatActionHandler
from reengage.delivery.handler import DeliveryHandler
from reengage.delivery.request_writes import RequestWrites
from reengage.domain.activity import ActivityEvent, ChannelKind, RecordResult
from reengage.events.notice import ManagerNoticeHandler
from reengage.events.outbox import publish_after_commit
from reengage.events.sender import EventHandler
from reengage.inbound.handler import InboundHandler
from reengage.inbound.platform import Statuses, write_statuses, write_statuses_on_loop
from reengage.ports import ActivityStore, Channel, Clock, MediaStore, TimerStore
from reengage.services.config_cache import ConfigCache
from reengage.services.flows import FlowDeps
from reengage.services.record_activity import record_activity
from reengage.services.tenant_cache import TenantCache
from reengage.silence.episodes import StepHandler
from reengage.silence.handler import SilenceHandler
from reengage.timers.engine import TimerEngine
from reengage.timers.handler import Handlers, TimerHandler
from reengage.timers.redis_store import RedisTimerStore
from reengage.timers.sharded_store import ShardedTimerStore
from reengage.timers.sql_store import SqlTimerStore


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    timers: TimerStore
    activity: ActivityStore
    clock: Clock
    pacer: Pacer
    credentials: Credentials
    tenants: TenantCache
    # Policies, campaigns and channels the timer handlers read, under configuration stamps.
    config: ConfigCache = field(default_factory=lambda: ConfigCache(None))
    registry: Handlers = field(default_factory=dict)
    send_pool: SendPool = field(default_factory=SendPool)
    # Events out: one connection pool for every receiver.
    events_client: httpx.Client = field(default_factory=httpx.Client)
    # Delivery statuses of concurrent webhooks share a transaction.
    statuses: GroupCommit[Statuses] = field(init=False)
    statuses_on_loop: LoopGroupCommit[Statuses] = field(init=False)
    # In-flight marks and answers of concurrent sends share a transaction.
    request_writes: RequestWrites = field(init=False)
    # Media bytes (uploads, then the files channels stream to the platforms).
    media: MediaStore = field(init=False)

    def __post_init__(self) -> None:
        self.media = DirectoryMediaStore(self.settings.media_path())
        self.statuses = GroupCommit(self.sessions, write_statuses)
        self.request_writes = RequestWrites(self.sessions)
        dsn = dsn_of(self.engine)
        self.statuses_on_loop = LoopGroupCommit(
            self.sessions,
            write_statuses,
            on_loop=partial(write_statuses_on_loop, dsn) if dsn is not None else None,
        )

    @classmethod
    def build(
        cls, settings: Settings, *, clock: Clock | None = None, timers: TimerStore | None = None
    ) -> Runtime:
        engine = make_engine(settings.database_url, **_pool_of(settings))
        sessions = make_session_factory(engine)
        layout = Layout(count=settings.redis_shard_count, cluster=settings.redis_cluster)
        client = (
            connect(settings.redis_url, cluster=settings.redis_cluster)
            if settings.redis_url
            else None
        )
        if timers is None:
            timers = redis_timers(client, layout) if client else SqlTimerStore(sessions)
        activity: ActivityStore
        if client is not None and isinstance(timers, RedisTimerStore | ShardedTimerStore):
            activity = redis_activity(
                client,
                timers,
                sessions,
                layout,
                dedup_per_subject=settings.event_dedup_per_subject,
                idle=settings.hot_state_idle,
            )
        else:
            activity = SqlActivityStore(sessions, timers)
        if clock is None:
            clock = (
                AcceleratedClock(settings.clock_speed, settings.clock_epoch)
                if settings.clock_speed > 1
                else SystemClock()
            )
        # Platform limits are counted in real time (a test's manual clock is its own).
        pacer: Pacer
        if client is None:
            pacer = InMemoryPacer(clock.real_time)
        else:
            pacer = RedisPacer(client, clock.real_time if isinstance(clock, ManualClock) else None)
        credentials = Credentials(settings.secret_keys())
        stamps = None
        if isinstance(activity, RedisActivityStore | ShardedActivityStore) and client is not None:
            # Bots and keys are cached only where a change can be seen at once (Redis).
            stamps = ConfigStamps(client, layout.namespace, layout.tags())
            stamps.watch(sessions)
        tenants = TenantCache(sessions, stamps, settings.default_inactivity_threshold)
        runtime = cls(
            settings,
            engine,
            sessions,
            timers,
            activity,
            clock,
            pacer,
            credentials,
            tenants,
            ConfigCache(stamps),
        )
        if engine.dialect.name != "sqlite":  # SQLite has one writer: its sends go one by one
            runtime.send_pool = SendPool(settings.send_concurrency)
        runtime.registry.update({h.purpose: h for h in runtime.handlers()})
        publish_after_commit(sessions, timers)
        return runtime

    def handlers(self) -> list[TimerHandler]:
        """Every timer purpose and what runs it, in the order a silence flows through them:
        a user's message (`inbound`), their silence (`inactivity`: timeouts, recovery
        episodes), an episode's steps (`recovery_step`), and the messages all of them send
        (`delivery`, with its `chat_action` and `auto_delete`), and the events they decided
        (`event`)."""
        sessions, activity, settings = self.sessions, self.activity, self.settings
        language = settings.default_language
        sending = SendDeps(
            sessions,
            self,
            activity,
            self.clock,
            self.send_pool,
            self.media,
            self.request_writes,
        )
        return [
            InboundHandler(sessions, activity, self.record, language),
            SilenceHandler(
                sessions,
                activity,
                settings.default_inactivity_threshold,
                language,
                self.record,
                self.config,
            ),
            StepHandler(sessions, activity, self.config),
            DeliveryHandler(sending),
            ChatActionHandler(sessions, self, activity),
            AutoDeleteHandler(sessions, self),
            EventHandler(sessions, self.credentials, self.events_client),
            ManagerNoticeHandler(sessions, self.manager_channel),
        ]

    def manager_channel(self) -> Channel | None:
        """The manager bot, to message admins (None: no token is set)."""
        token = self.settings.manager_bot_token
        if token is None:
            return None
        return TelegramChannel(
            token.get_secret_value(),
            bot_key="manager",
            clock=self.clock,
            pacer=self.pacer,
            api_base=self.settings.telegram_api_base,
        )

    @property
    def timer_engine(self) -> TimerEngine:
        return TimerEngine(self.timers, self.registry)

    @property
    def flow_deps(self) -> FlowDeps:
        return FlowDeps(self.sessions, self.activity, self.timers, self.record, self.clock.now)

    def channel_for(self, org_id: int, bot_id: int) -> Channel:
        """The channel adapter of one of the organization's bots (held while the
        organization's configuration stamp stays: a new token or setting applies at once)."""
        held = self.config.batch([org_id])
        return held.get(org_id, ("channel", bot_id), partial(self._build_channel, org_id, bot_id))

    def _build_channel(self, org_id: int, bot_id: int) -> Channel:
        with self.sessions() as session:
            bot = session.scalar(select(Bot).where(Bot.org_id == org_id, Bot.id == bot_id))
            if bot is None:
                raise LookupError(f"bot {bot_id} not found")
            credentials = self.credentials.of(bot.id, bot.credentials)
        return build_channel(
            kind=ChannelKind(bot.channel),
            org_id=org_id,
            bot_id=bot_id,
            credentials=credentials,
            settings=self.settings,
            sessions=self.sessions,
            clock=self.clock,
            pacer=self.pacer,
            paid_broadcast=bot.paid_broadcast,
        )

    def record(
        self,
        org_id: int,
        events: Sequence[ActivityEvent],
        recheck: Callable[[], None] | None = None,
        key: str | None = None,
    ) -> RecordResult:
        """Record activity for one organization (the library entry point); `key`: the API key
        the request came with, valid under the configuration the batch is applied with."""
        return record_activity(
            self.tenants, self.activity, org_id, events, self.clock.now(), recheck, key
        )

    def close(self) -> None:
        self.send_pool.close()
        self.events_client.close()
        close_connections()
        self.engine.dispose()


def _pool_of(settings: Settings) -> dict[str, int]:
    """PostgreSQL: room in the connection pool for every send thread at once (an answer that
    is not plain is written by its own thread), beside the batch's own and the group commits'."""
    if settings.database_url.startswith("sqlite"):
        return {}
    return {"max_overflow": max(20, settings.send_concurrency)}
