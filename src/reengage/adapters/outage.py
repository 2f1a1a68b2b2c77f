"""Which failures mean a dependency is out of reach (the database, Redis, the broker), and the
one-line form of any failure: its type and its first line, credentials masked.

The scheduler waits an outage out (backing off) and the command line reports it in one line;
both ask here, so that what counts as "unreachable" is decided once."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

import redis.exceptions
import structlog
from sqlalchemy import exc as sa_exc

from reengage.redaction import redact

try:  # the broker's client, when Celery is installed (it is, for workers and schedulers)
    from kombu.exceptions import OperationalError as BrokerError
except ImportError:  # pragma: no cover
    BrokerError = ConnectionError  # type: ignore[assignment,misc]

log = structlog.get_logger(__name__)

_UNREACHABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,  # refused, reset, authentication, loading
    redis.exceptions.TimeoutError,
    BrokerError,
    ConnectionError,  # a socket's own (refused, reset)
    TimeoutError,
)


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says a dependency is unreachable (rather than a bug, bad data, or a lock
    that a retry of the same work gets past: SQLite's "database is locked", PostgreSQL's
    lock timeouts and cancelled statements are not outages)."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or (
            isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
            and _connection_lost(exc.orig)
        )
    return isinstance(exc, _UNREACHABLE)


def _connection_lost(orig: BaseException | None) -> bool:
    if orig is None or isinstance(orig, sqlite3.Error):
        return False
    # psycopg: a failure to connect has no SQLSTATE; class 08 is a connection exception, 57P
    # the server shutting down or restarting.
    sqlstate: str | None = getattr(orig, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(("08", "57P"))


def one_line(exc: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, without the SQL or the URLs' passwords."""
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    first = lines[0].strip() if lines else ""
    text = f"{type(cause).__name__}: {first}" if first else type(cause).__name__
    return redact(text)[:limit]


@dataclass(slots=True)
class Backoff:
    """Capped exponential waits while a dependency is away: `first`, doubling, at most `cap`
    (seconds); `reset` once a round succeeds."""

    first: float = 0.1
    cap: float = 30.0
    failures: int = 0

    def next_wait(self) -> float:
        """The wait after one more failure in a row."""
        self.failures += 1
        wait: float = min(self.cap, self.first * 2 ** min(self.failures - 1, 30))
        return wait

    def reset(self) -> None:
        self.failures = 0


@dataclass(slots=True)
class Outage:
    """What a loop that depends on the database and Redis logs while they are away: one line
    when a round first fails for want of them (`<name>.store_unavailable`, the error's one-line
    form) and one when a round succeeds again (`<name>.store_recovered`, how long it was
    down), never a line per retry; between tries it waits `backoff`. A failure that is not an
    outage (a bug) is logged every time, with its traceback, and backed off the same way."""

    name: str
    backoff: Backoff = field(default_factory=Backoff)
    since: float | None = None  # when the outage began (monotonic)

    def failed(self, exc: BaseException) -> float:
        """Log `exc` as its kind deserves; the seconds to wait before the next round."""
        if not is_outage(exc):
            log.error(f"{self.name}.round_failed", exc_info=exc)
        elif self.since is None:
            self.since = time.monotonic()
            log.error(f"{self.name}.store_unavailable", error=one_line(exc))
        return self.backoff.next_wait()

    def succeeded(self) -> None:
        if self.since is not None:
            down = time.monotonic() - self.since
            log.warning(f"{self.name}.store_recovered", down_s=round(down, 1))
            self.since = None
        self.backoff.reset()
