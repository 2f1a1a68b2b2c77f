"""Who is calling and what their bots are, from memory: the hot path of recording activity
reads no database for a known API key and a known bot.

Each organization's bots (and the API keys seen for it) are held under the stamp of its
configuration read before them (`ConfigStamps`); recording passes that stamp to the record
script, which applies nothing when a bot or a key of the organization changed since — the
caller then forgets the organization and checks the key again. So a revoked key is refused,
and a changed bot applies, at the next request. Without Redis (the embedded mode) nothing is
cached. A change made behind reengage's back (SQL by hand) is picked up within `max_age`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from reengage.adapters.crypto import hash_api_key
from reengage.adapters.db.models import Bot
from reengage.adapters.redis.config_stamps import ConfigStamps
from reengage.domain.activity import BotPolicy, ChannelKind
from reengage.i18n import N_
from reengage.ports import ConfigStamp
from reengage.services.errors import Unauthorized
from reengage.services.record_activity import bot_policy
from reengage.services.tenancy import LIVE_BOT, authenticate, key_is_valid, scoped


@dataclass(frozen=True, slots=True)
class BotEntry:
    """What the hot path needs of a bot: its tenant, channel, credentials (as stored,
    encrypted) and the policy that moves its subjects' timers."""

    id: int
    org_id: int
    channel: ChannelKind
    credentials: bytes | None
    policy: BotPolicy


@dataclass(slots=True)
class OrgView:
    stamp: ConfigStamp | None
    loaded: float
    bots: dict[int, BotEntry]
    keys: set[str] = field(default_factory=set)  # digests of the keys known valid


class TenantCache:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        stamps: ConfigStamps | None,
        default_threshold: timedelta,
        *,
        max_age: timedelta = timedelta(seconds=60),
        tick: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._stamps = stamps
        self._threshold = default_threshold
        self._max_age = max_age.total_seconds()
        self._tick = tick
        self._orgs: dict[int, OrgView] = {}
        # Views are replaced whole under this lock: a key is never left pointing at an
        # organization whose view does not hold it.
        self._installing = threading.RLock()
        self._key_org: dict[str, int] = {}
        self._bot_org: dict[int, int] = {}

    def org_of_key(self, plaintext: str) -> int:
        """The organization an API key belongs to; Unauthorized when it is unknown or
        revoked."""
        digest = hash_api_key(plaintext)
        org_id = self._key_org.get(digest)
        if org_id is not None:
            view = self._fresh(org_id)
            if view is not None and digest in view.keys:
                return org_id
        with self._sessions() as session:
            org_id = authenticate(session, plaintext)
        if self._stamps is not None:
            # Checked again under the stamp it is cached with (a revocation may have
            # committed between the first look and the stamp).
            self._load(org_id, digest)
        return org_id

    def cached_org_of_key(self, plaintext: str) -> int | None:
        """The key's organization if memory alone can tell (no I/O), else None."""
        digest = hash_api_key(plaintext)
        org_id = self._key_org.get(digest)
        if org_id is None:
            return None
        view = self._fresh(org_id)
        return org_id if view is not None and digest in view.keys else None

    def bots(
        self, org_id: int, bot_ids: set[int], key: str | None = None
    ) -> tuple[dict[int, BotPolicy], ConfigStamp | None]:
        """The policies of the organization's bots among `bot_ids` (another organization's
        are not found), and the stamp they were read under. With the caller's API `key`, the
        key is known valid under that same stamp (checked again when the view is read anew:
        Unauthorized if it was revoked meanwhile)."""
        digest = hash_api_key(key) if key is not None else None
        view = self._fresh(org_id)
        if (
            view is None
            or not bot_ids <= view.bots.keys()
            or (digest is not None and digest not in view.keys)
        ):
            view = self._load(org_id, digest)  # a bot created since is found at once
        return {b: view.bots[b].policy for b in bot_ids if b in view.bots}, view.stamp

    def knows(self, org_id: int, bot_ids: set[int]) -> bool:
        """True when memory alone answers `bots(org_id, bot_ids)`."""
        view = self._fresh(org_id)
        return view is not None and bot_ids <= view.bots.keys()

    def cached_bot(self, bot_id: int) -> tuple[BotEntry, ConfigStamp | None] | None:
        """Any organization's bot by id, and the stamp it is held under, if memory alone can
        tell (no I/O), else None. Only with stamps (Redis): what is done with it must be
        checked under that stamp."""
        org_id = self._bot_org.get(bot_id)
        view = self._fresh(org_id) if org_id is not None and self._stamps else None
        bot = view.bots.get(bot_id) if view is not None else None
        return (bot, view.stamp) if bot is not None and view is not None else None

    def bot(self, bot_id: int) -> tuple[BotEntry | None, ConfigStamp | None]:
        """Any organization's bot by id (webhooks: the bot names its tenant)."""
        org_id = self._bot_org.get(bot_id)
        view = self._fresh(org_id) if org_id is not None else None
        if view is None or bot_id not in view.bots:
            with self._sessions() as session:
                # unscoped: a webhook finds its tenant by the bot it names; its signature proves it
                row = session.get(Bot, bot_id)
                if row is None or row.deleted_at is not None:
                    return None, None
                org_id = row.org_id
            view = self._load(org_id)
        return view.bots.get(bot_id), view.stamp

    def current(self, org_id: int, stamp: ConfigStamp | None) -> bool:
        """Whether `stamp` is still the organization's (one Redis read)."""
        if self._stamps is None or stamp is None:
            return True
        if self._stamps.read(org_id) == stamp:
            return True
        self.forget(org_id)
        return False

    def forget(self, org_id: int) -> None:
        """Drop what is held of an organization (its configuration changed)."""
        with self._installing:
            view = self._orgs.pop(org_id, None)
            if view is not None:
                for digest in view.keys:
                    self._key_org.pop(digest, None)
                for bot_id in view.bots:
                    self._bot_org.pop(bot_id, None)

    def _fresh(self, org_id: int) -> OrgView | None:
        view = self._orgs.get(org_id)
        if view is None or self._tick() - view.loaded >= self._max_age:
            return None
        return view

    def _load(self, org_id: int, digest: str | None = None) -> OrgView:
        # The stamp first: rows read after it are at least as new as it says.
        stamp = self._stamps.read(org_id) if self._stamps is not None else None
        with self._sessions() as session:
            rows = session.scalars(scoped(Bot, org_id, LIVE_BOT)).all()
            valid = digest is not None and key_is_valid(session, org_id, digest)
        bots = {
            b.id: BotEntry(
                b.id,
                b.org_id,
                ChannelKind(b.channel),
                b.credentials,
                bot_policy(b, self._threshold),
            )
            for b in rows
        }
        if digest is not None and not valid:
            raise Unauthorized(N_("invalid or revoked API key"))
        # Keys are checked again with every load: a revocation by hand is seen by max_age.
        keys = {digest} if digest is not None else set()
        view = OrgView(stamp, self._tick(), bots, keys)
        with self._installing:
            self.forget(org_id)
            if self._stamps is not None:
                self._orgs[org_id] = view
                self._key_org.update(dict.fromkeys(keys, org_id))
                self._bot_org.update(dict.fromkeys(bots, org_id))
        return view
