"""One Settings object, built at the edge and passed down."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import Annotated, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reengage.domain.duration import parse_duration

Language = Literal["pt-BR", "en"]
# Fine for the embedded SQLite mode on a laptop; refused by the long-running commands elsewhere.
DEFAULT_SECRET_KEY = "change-me-in-production"
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


# Environment values like `600`, `10m`, `1h30m` or `PT10M`.
Duration = Annotated[timedelta, BeforeValidator(_duration)]


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
    broker_url: str | None = Field(
        default=None, description="Celery broker; unset = work runs in-process (embedded mode)."
    )
    secret_key: SecretStr = Field(
        default=SecretStr(DEFAULT_SECRET_KEY),
        description="Encrypts bot credentials at rest and signs callbacks.",
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
        default=8,
        ge=1,
        le=64,
        description="Requests one worker process has in flight at once (PostgreSQL; SQLite "
        "sends one at a time).",
    )
    sweep_interval: Duration = Field(
        default=timedelta(seconds=30),
        description="How often the database is checked for timers missing from the timer index.",
    )
    event_dedup_ttl: Duration = Field(
        default=timedelta(hours=24),
        description="With Redis: how long an event id is remembered to drop retries.",
    )
    flush_interval: Duration = Field(
        default=timedelta(seconds=1),
        description="With Redis: how often recent activity is written to the database.",
    )
    default_inactivity_threshold: Duration = Field(default=timedelta(minutes=10))
    clock_speed: float = Field(
        default=1.0, ge=1.0, le=10_000.0, description="Time acceleration for demos (1 = real time)."
    )
    clock_epoch: AwareDatetime | None = Field(
        default=None,
        description="With clock_speed: the instant accelerated time starts from (every process "
        "given the same epoch agrees on the time); default: when the process starts.",
    )
    log_json: bool = False
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

    @cached_property
    def embedded(self) -> bool:
        """True when no broker is configured: the scheduler runs work in-process."""
        return self.broker_url is None
