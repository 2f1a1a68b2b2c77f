"""`reengage doctor`: the configuration, the database (and its schema), Redis, the broker and
every bot's credentials checked, one line per check, each as the platform itself answers
(Telegram's getMe, WhatsApp's phone-number lookup)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from pydantic import ValidationError
from sqlalchemy import select

from reengage.adapters.crypto import Credentials
from reengage.config import Settings
from reengage.entrypoints import startup

OK, FAIL, SKIP = "ok", "FAIL", "skip"


@dataclass(frozen=True, slots=True)
class Check:
    status: str  # OK, FAIL or SKIP
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<5} {self.name}: {self.detail}"


def _attempt(name: str, check: Callable[[], str]) -> Check:
    try:
        return Check(OK, name, check())
    except (startup.StartupError, ValueError) as exc:
        return Check(FAIL, name, str(exc))


def run(load: Callable[[], Settings] = Settings) -> Iterator[Check]:
    """The checks, in order; a check that cannot run because an earlier one failed says so."""
    try:
        settings = load()
    except ValidationError as exc:
        yield Check(FAIL, "configuration", startup.explain(exc) or str(exc))
        return
    config = _attempt("configuration", lambda: _configuration(settings))
    yield config
    if config.status == FAIL:
        return
    database = _attempt("database", lambda: _database(settings))
    yield database
    yield _redis("redis", "REENGAGE_REDIS_URL", settings.redis_url, "embedded mode")
    yield _redis("broker", "REENGAGE_BROKER_URL", settings.broker_url, "work runs in-process")
    if database.status == FAIL:
        yield Check(SKIP, "bots", "not checked: the database check failed")
        return
    yield from _bots(settings)


def _configuration(settings: Settings) -> str:
    url = startup.database_url(settings.database_url)
    startup.check_secret_key(settings)
    keys = len(settings.secret_keys())
    mode = "embedded (no broker)" if settings.embedded else "production (broker)"
    rotation = f", {keys} secret keys (rotating)" if keys > 1 else ""
    return f"{url.get_backend_name()}, {mode}{rotation}"


def _database(settings: Settings) -> str:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from reengage.adapters.db.migrate import alembic_config
    from reengage.adapters.db.session import make_engine

    startup.check_database(settings)
    head = ScriptDirectory.from_config(alembic_config(settings.database_url)).get_current_head()
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    where = startup.where_database(settings.database_url)
    if current != head:
        raise ValueError(
            f"{where} is at schema {current or 'none'}, this release needs {head}: "
            "run `reengage migrate`"
        )
    return f"{where} reachable, schema {head} (latest)"


def _redis(name: str, variable: str, url: str | None, unset: str) -> Check:
    if url is None:
        return Check(SKIP, name, f"{variable} unset: {unset}")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return Check(SKIP, name, f"{variable} is not a Redis URL; not checked")

    def ping() -> str:
        startup.ping(variable, url)
        return f"{startup.where(url)} answers"

    return _attempt(name, ping)


def _bots(settings: Settings) -> Iterator[Check]:
    from reengage.adapters.channels import factory
    from reengage.adapters.db.models import Bot
    from reengage.adapters.db.session import make_engine, make_session_factory

    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            # every organization's bots: the operator's command
            rows = [
                (b.id, b.channel, b.name, b.credentials)
                for b in session.scalars(
                    select(Bot).where(Bot.deleted_at.is_(None)).order_by(Bot.id)
                )
            ]
    finally:
        engine.dispose()
    if not rows:
        yield Check(SKIP, "bots", "none registered")
        return
    credentials = Credentials(settings.secret_keys())
    try:
        for bot_id, channel, name, blob in rows:
            label = f"bot {bot_id} ({channel}, {name})"
            check = partial(_bot, settings, credentials, bot_id, channel, blob)
            yield _attempt(label, check)
    finally:
        factory.close_connections()


def _bot(
    settings: Settings, credentials: Credentials, bot_id: int, channel: str, blob: bytes | None
) -> str:
    from reengage.adapters.channels import telegram, whatsapp

    values = credentials.of(bot_id, blob)  # ValueError when no secret key decrypts them
    if channel == "telegram":
        if not values.get("token"):
            raise ValueError("no token: `reengage bots rotate-token`")
        username = telegram.check_token(values["token"], settings.telegram_api_base)
        return f"token accepted by Telegram ({username})"
    if channel == "whatsapp":
        number = str(values.get("phone_number_id") or "")
        token = str(values.get("access_token") or "")
        if not number or not token:
            raise ValueError("phone_number_id or access_token missing")
        shown = whatsapp.check_number(number, token, settings.whatsapp_api_base)
        return f"access token accepted by WhatsApp for {shown}"
    return "nothing to check (no platform token)"
