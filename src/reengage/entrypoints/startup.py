"""What a command checks before it starts, and how a failure to start reads: one line on
stderr saying what failed, where (host and port, never a password) and how to fix it.

Every known failure is mapped here, once (`explain`); the command line prints the line and
exits with `EXIT_CONFIG`. Anything not mapped is a bug and keeps its traceback (without local
variables)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from datetime import timedelta

import redis
import redis.exceptions
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from reengage.adapters.outage import Backoff, is_outage, one_line
from reengage.config import DEFAULT_SECRET_KEY, Settings

EXIT_CONFIG = 2  # the exit code of a configuration or connection error
MIN_SECRET_KEY = 32  # characters
MAKE_A_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
BACKENDS = ("postgresql", "sqlite")
CONNECT_TIMEOUT = 5  # seconds, for the checks at start


class StartupError(Exception):
    """A command cannot start; the message is the whole explanation, on one line."""


def check_secret_key(settings: Settings) -> None:
    """Outside the embedded SQLite mode the secret key (bot tokens encrypted at rest, manager
    bot buttons signed) must not be the shipped default nor short."""
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        return
    keys = settings.secret_keys()
    for position, key in enumerate(keys, 1):
        if key != DEFAULT_SECRET_KEY and len(key) >= MIN_SECRET_KEY:
            continue
        why = (
            "the default"
            if key == DEFAULT_SECRET_KEY
            else f"shorter than {MIN_SECRET_KEY} characters"
        )
        which = (
            "REENGAGE_SECRET_KEY" if len(keys) == 1 else f"key {position} of REENGAGE_SECRET_KEY"
        )
        raise StartupError(
            f"{which} is {why}: it encrypts bot tokens and signs the "
            f"manager bot's buttons; set a long random one, e.g. from `{MAKE_A_KEY}`"
        )


def settle_heap() -> None:
    """A long-running process, once it has built what it keeps for its life (modules, the
    ORM's mappings, the runtime): collect what starting left behind, then move the rest out
    of the collector's sight (`gc.freeze`). A full collection then walks only what the work
    allocates, not the hundreds of thousands of objects that never become garbage; it was
    a fifth of a write-behind batch's processor time. A forked child shares those pages
    longer, too."""
    gc.collect()
    gc.freeze()


def wait_for(check: Callable[[], None], timeout: timedelta) -> None:
    """Run `check` until it passes; while what it reaches is merely unreachable (a server
    restarting) try again, backing off, for up to `timeout`; then let its error stand."""
    deadline = time.monotonic() + timeout.total_seconds()
    backoff = Backoff(first=0.1, cap=2.0)
    while True:
        try:
            check()
        except StartupError as exc:
            left = deadline - time.monotonic()
            if exc.__cause__ is None or not is_outage(exc.__cause__) or left <= 0:
                raise
            time.sleep(min(backoff.next_wait(), left))
        else:
            return


def check_database(settings: Settings) -> None:
    """Reach the database once, so that a wrong address stops the command now."""
    url = database_url(settings.database_url)
    from reengage.adapters.db.session import make_engine

    engine = (
        make_engine(settings.database_url)
        if url.get_backend_name() == "sqlite"
        else make_engine(settings.database_url, connect_args={"connect_timeout": CONNECT_TIMEOUT})
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise StartupError(_unreachable_db(url, exc)) from exc
    finally:
        engine.dispose()


def check_redis(settings: Settings) -> None:
    """Reach Redis (and a Redis broker) once, so that a wrong address stops the command now."""
    for name, value in (
        ("REENGAGE_REDIS_URL", settings.redis_url),
        ("REENGAGE_BROKER_URL", settings.broker_url),
    ):
        if value and value.startswith(("redis://", "rediss://", "unix://")):
            ping(name, value)


def database_url(value: str) -> URL:
    """The database URL, or a `StartupError` saying what is wrong with it."""
    try:
        url = make_url(value)
    except sa_exc.ArgumentError as exc:
        raise StartupError(
            "REENGAGE_DATABASE_URL is not a database URL; expected "
            "postgresql://user:password@host:5432/name or sqlite:///reengage.db"
        ) from exc
    try:
        url.get_dialect()  # the driver named after `+`, loaded
    except sa_exc.NoSuchModuleError as exc:
        raise StartupError(
            f"REENGAGE_DATABASE_URL names the driver {url.drivername!r}, which is not "
            "installed; use postgresql://user:password@host:5432/name (psycopg) or "
            "sqlite:///reengage.db"
        ) from exc
    if url.get_backend_name() not in BACKENDS:
        raise StartupError(
            f"REENGAGE_DATABASE_URL names the database {url.get_backend_name()!r}, which "
            "reengage does not run on; use postgresql://user:password@host:5432/name or "
            "sqlite:///reengage.db"
        )
    return url


def ping(name: str, value: str) -> None:
    """Ping a Redis URL once; a `StartupError` naming it when it does not answer."""
    client = redis.Redis.from_url(value, socket_connect_timeout=CONNECT_TIMEOUT)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        raise StartupError(
            f"cannot reach Redis at {where(value)} ({name}): {one_line(exc)}; check the address "
            "and password, and that Redis is running"
        ) from exc
    finally:
        client.close()  # type: ignore[no-untyped-call]


def where(value: str) -> str:
    """host:port/db of a URL, its password masked."""
    try:
        url = make_url(value)
    except sa_exc.ArgumentError:
        return "?"
    host = f"{url.host or 'localhost'}:{url.port or ''}".rstrip(":")
    return f"{host}/{url.database}" if url.database else host


def where_database(value: str) -> str:
    """Where a database URL points (host:port/name, or the SQLite file), no password."""
    url = make_url(value)
    return (url.database or "?") if url.get_backend_name() == "sqlite" else where(value)


def _unreachable_db(url: URL, exc: BaseException) -> str:
    sqlite = url.get_backend_name() == "sqlite"
    place = (url.database or "?") if sqlite else where(str(url))
    return (
        f"cannot reach the database at {place} (REENGAGE_DATABASE_URL): {one_line(exc)}; "
        "check the address, user and password, and that the server is running"
    )


def _settings_error(exc: ValidationError) -> str:
    # The fields and what is wrong with them; never the values (one may be a secret).
    problems = "; ".join(
        f"REENGAGE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
        for err in exc.errors()
    )
    return f"invalid setting: {problems}"


_EXPLAINERS: list[tuple[type[BaseException], Callable[[BaseException], str]]] = [
    (StartupError, str),
    (ValidationError, lambda e: _settings_error(e)),  # type: ignore[arg-type]
    (sa_exc.ArgumentError, lambda e: f"REENGAGE_DATABASE_URL is not usable: {one_line(e)}"),
    (sa_exc.NoSuchModuleError, lambda e: f"REENGAGE_DATABASE_URL: {one_line(e)}"),
]


def explain(exc: BaseException) -> str | None:
    """The one-line explanation of a known failure to start; None for anything else."""
    for kind, explainer in _EXPLAINERS:
        if isinstance(exc, kind):
            return explainer(exc)
    if is_outage(exc):
        return (
            f"a dependency is unreachable: {one_line(exc)}; check REENGAGE_DATABASE_URL, "
            "REENGAGE_REDIS_URL and REENGAGE_BROKER_URL, and that those servers are running"
        )
    return None
