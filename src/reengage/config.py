"""One Settings object, built at the edge and passed down."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from reengage.domain.duration import parse_duration

Language = Literal["pt-BR", "en"]
# Fine for the embedded SQLite mode on a laptop; refused by the long-running commands elsewhere.
DEFAULT_SECRET_KEY = "change-me-in-production"
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


# Environment values like `600`, `10m`, `1h30m` or `PT10M`.
Duration = Annotated[timedelta, BeforeValidator(_duration)]


_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{16,256}")


class Settings(BaseSettings):
    """Runtime configuration, read from `REENGAGE_*` environment variables or `.env`."""

    model_config = SettingsConfigDict(env_prefix="REENGAGE_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///reengage.db",
        description="SQLAlchemy URL of the source of truth (PostgreSQL in production).",
    )
    redis_url: str | None = Field(
        default=None, description="Redis for hot state and the timer index; unset = embedded."
    )
    redis_cluster: bool = Field(
        default=False,
        description="The Redis URL names one node of a Redis Cluster (docs/redis-cluster.md).",
    )
    redis_shards: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Logical shards of the hot state, each one hash tag; fixed for the "
        "data's life. Unset: 1 on one Redis (today's key names), 12 on a cluster.",
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker; unset = work runs in-process (embedded mode)."
    )
    secret_key: SecretStr = Field(
        default=SecretStr(DEFAULT_SECRET_KEY),
        description="Encrypts bot credentials at rest and signs callbacks. Several keys, "
        "newest first and comma-separated, while rotating: the newest encrypts and signs, "
        "every one decrypts and verifies (`reengage keys rotate`).",
    )
    default_language: Language = "pt-BR"
    timer_lease: Duration = Field(
        default=timedelta(seconds=30),
        description="How long a claimed timer stays invisible before another scheduler retries it.",
    )
    scheduler_batch: int = Field(default=500, ge=1, le=10_000)
    scheduler_poll: Duration = Field(
        default=timedelta(milliseconds=50),
        description="How often a scheduler looks for timers no one can wake it for (the SQL "
        "store's other processes) and while its executors are behind.",
    )
    send_concurrency: int = Field(
        default=32,
        ge=1,
        le=64,
        description="Requests one worker process has in flight at once (PostgreSQL; SQLite "
        "sends one at a time).",
    )
    sweep_interval: Duration = Field(
        default=timedelta(seconds=30),
        description="How often the database is checked for timers missing from the timer index.",
    )
    event_dedup_per_subject: int = Field(
        default=16,
        ge=1,
        le=256,
        description="With Redis: how many of a subject's latest event ids are remembered to "
        "drop platform retries (kept in the subject's hot state).",
    )
    hot_state_idle: Duration = Field(
        default=timedelta(hours=1),
        description="With Redis: how long a subject stays quiet (its activity written to the "
        "database, no silence timer pending) before its hot state leaves Redis; it is "
        "reloaded from the database when the subject comes back.",
    )
    flush_interval: Duration = Field(
        default=timedelta(seconds=1),
        description="With Redis: how often recent activity is written to the database "
        "(write-behind threads: how long they sleep once nothing waits).",
    )
    write_behind_threads: int = Field(
        default=2,
        ge=0,
        le=16,
        description="With Redis and PostgreSQL: threads of each scheduler that write activity "
        "to the database, continuously and side by side (0: the scheduler's own loop does, a "
        "quarter of a second per flush interval at most). SQLite: always its own loop.",
    )
    default_inactivity_threshold: Duration = Field(default=timedelta(minutes=10))
    retention_days: int = Field(
        default=90,
        ge=1,
        le=36_500,
        description="Days the activity event log is kept; `reengage prune` and the scheduler "
        "(hourly) drop older days whole (PostgreSQL: day partitions; SQLite: batched deletes).",
    )
    prune_interval: Duration = Field(
        default=timedelta(hours=1),
        description="How often a scheduler prunes past the retention and makes the coming "
        "days' partitions.",
    )
    clock_speed: float = Field(
        default=1.0, ge=1.0, le=10_000.0, description="Time acceleration for demos (1 = real time)."
    )
    clock_epoch: AwareDatetime | None = Field(
        default=None,
        description="With clock_speed: the instant accelerated time starts from (every process "
        "given the same epoch agrees on the time); default: when the process starts.",
    )
    log_json: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        description="info: state changes, refusals and failures; debug: every decision too "
        "(each silence, step and send).",
    )
    log_repeats_per_minute: int = Field(
        default=20,
        ge=0,
        description="Lines of one event and level written a minute at most, above debug; the "
        "next one written says how many were left out (0: all).",
    )
    startup_timeout: Duration = Field(
        default=timedelta(seconds=15),
        description="How long a starting command waits for an unreachable database or Redis "
        "(a restart in progress) before it gives up with one line and exit code 2.",
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        description="The largest request body the API reads (413 beyond); the media upload "
        "(`POST /v1/media`) has its own: 50 MB plus 1 MiB of multipart framing.",
    )
    media_dir: Path | None = Field(
        default=None,
        description="Where uploaded media files are kept (by content hash); every API process "
        "and worker must see the same directory. Unset: `media/` next to the SQLite file, or "
        "in the working directory with PostgreSQL.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where platforms reach this API (used when registering webhooks).",
    )
    telegram_api_base: str | None = Field(
        default=None, description="Telegram Bot API server (default: api.telegram.org)."
    )
    manager_bot_token: SecretStr | None = Field(
        default=None, description="Token of the Telegram manager bot (`reengage manager-bot`)."
    )
    manager_bot_webhook_secret: SecretStr | None = Field(
        default=None,
        description="16-256 characters of A-Z, a-z, 0-9, _ and -. Set: the manager bot's "
        "updates come by webhook to the API at <public_url>/webhooks/manager-bot with this "
        "secret (`reengage manager-bot --webhook` registers it); unset: `reengage manager-bot` "
        "long-polls.",
    )
    whatsapp_api_base: str = Field(
        default="https://graph.facebook.com", description="WhatsApp Cloud (Graph) API."
    )

    console_session_ttl: Duration = Field(
        default=timedelta(hours=12),
        description="How long a web console login lasts before the user logs in again.",
    )

    @field_validator("redis_url", "broker_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    def secret_keys(self) -> list[str]:
        """The secret keys, newest first."""
        keys = [k.strip() for k in self.secret_key.get_secret_value().split(",")]
        return [k for k in keys if k] or [DEFAULT_SECRET_KEY]

    @field_validator("manager_bot_webhook_secret")
    @classmethod
    def _telegram_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # What Telegram accepts as a webhook's secret_token, at least 16 characters long.
        if value is not None and not _WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("must be 16-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @property
    def redis_shard_count(self) -> int:
        """The number of logical shards (`redis_shards`, or its default for the mode)."""
        return self.redis_shards or (12 if self.redis_cluster else 1)

    def media_path(self) -> Path:
        """The media directory: `media_dir`, or `media/` beside the SQLite file."""
        if self.media_dir is not None:
            return self.media_dir
        url = make_url(self.database_url)
        database = url.database
        if url.get_backend_name() == "sqlite" and database and database != ":memory:":
            return Path(database).resolve().parent / "media"
        return Path("media").resolve()

    @cached_property
    def embedded(self) -> bool:
        """True when no broker is configured: the scheduler runs work in-process."""
        return self.broker_url is None
