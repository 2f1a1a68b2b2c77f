"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from reengage.domain.activity import ChannelKind, ConversationStatus, EventType
from reengage.domain.bounds import MAX_BIGINT, MAX_INT, json_problem, text_problem
from reengage.domain.contact import valid_zone

MAX_BATCH = 1000


class UnstorableValue(ValueError):
    """A value inside a free-form body that the stores cannot hold; `path` leads to it."""

    def __init__(self, message: str, path: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.path = path


def _storable_text(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    problem = json_problem(value)
    if problem:
        raise UnstorableValue(problem.message, problem.path)
    return value


# Every id, index and text of a request is one of these types, in paths, queries and bodies
# alike: what the database cannot hold is a 422 naming the field, never a 500 in a driver.
Id = Annotated[int, Field(ge=1, le=MAX_BIGINT, description="An id (1 to 2^63-1)")]
Index = Annotated[int, Field(ge=0, le=MAX_INT, description="Numbered from 0")]
Text = Annotated[str, AfterValidator(_storable_text)]
UserId = Annotated[Text, Field(min_length=1, max_length=128)]
FlowKey = Annotated[Text, Field(min_length=1, max_length=64)]
NodeId = Annotated[Text, Field(min_length=1, max_length=128)]
QueueName = Annotated[Text, Field(min_length=1, max_length=64)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]


class EventIn(BaseModel):
    """One activity event. `id` is yours: a retry with the same id is applied once."""

    model_config = ConfigDict(extra="forbid")

    id: Text = Field(min_length=1, max_length=128, description="Client-supplied idempotency id")
    type: EventType
    bot_id: Id
    user_id: UserId = Field(description="The user's id on the channel")
    occurred_at: AwareDatetime | None = Field(
        default=None, description="When it happened (ISO 8601 with offset); default: now"
    )
    status: ConversationStatus | None = Field(
        default=None, description="New status; required for `conversation.status` only"
    )
    text: Text | None = Field(
        default=None,
        max_length=4096,
        description="`message.user` only: what the user wrote. It moves the bot's flow and "
        "is checked for opt-out / opt-in keywords, once per event id.",
    )
    name: Text | None = Field(
        default=None, max_length=200, description="`message.user` only: the user's name"
    )
    time_zone: Text | None = Field(
        default=None,
        max_length=64,
        description="`message.user` only: the user's IANA time zone (e.g. America/Manaus); "
        "recovery steps at a time of day use it",
    )

    @model_validator(mode="after")
    def _status_matches_type(self) -> Self:
        if self.type is EventType.CONVERSATION_STATUS and self.status is None:
            raise ValueError("status is required when type is conversation.status")
        if self.type is not EventType.CONVERSATION_STATUS and self.status is not None:
            raise ValueError("status is only allowed when type is conversation.status")
        said = [n for n in ("text", "name", "time_zone") if getattr(self, n) is not None]
        if said and self.type is not EventType.USER_MESSAGE:
            raise ValueError(f"{said[0]} is only allowed when type is message.user")
        return self

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and not valid_zone(value):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name: America/Sao_Paulo)")
        return value


class EventBatch(BaseModel):
    """Up to 1,000 events, applied all together or not at all."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


class RecordOut(BaseModel):
    accepted: int = Field(description="Events applied now")
    duplicates: int = Field(description="Events whose id was already recorded (not re-applied)")


class ErrorOut(BaseModel):
    """Every error the API answers: `error` and `field` for programs (they never change),
    `message` for people, in the organization's language (else `Accept-Language`, else
    pt-BR)."""

    error: str = Field(description="A stable, machine-readable code", examples=["not_found"])
    field: str | None = Field(None, description="The input at fault", examples=["bot_id"])
    message: str = Field(description="What went wrong", examples=["bot 42 não encontrado"])
    errors: list[dict[str, Any]] | None = Field(
        None, description="A 422 of request validation: every mistake, `{field, message}`"
    )


class BotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    channel: ChannelKind
    credentials: dict[str, Text] | None = Field(
        default=None, description="Stored encrypted; never returned"
    )
    inactivity_threshold_seconds: int | None = Field(
        default=None,
        ge=0,
        le=30 * 86400,
        description="Silence before a conversation counts as inactive; null = default, 0 = off",
    )
    paid_broadcast: bool = Field(
        default=False,
        description="Telegram only: send with `allow_paid_broadcast` (up to 1,000 messages/s "
        "instead of 30, for 0.1 Telegram Star per message from the bot's balance), paced "
        "accordingly",
    )

    @model_validator(mode="after")
    def _threshold_range(self) -> Self:
        value = self.inactivity_threshold_seconds
        if value not in (None, 0) and not 60 <= value <= 30 * 86400:  # type: ignore[operator]
            raise ValueError("inactivity_threshold_seconds must be 0 or 60..2592000")
        if self.paid_broadcast and self.channel is not ChannelKind.TELEGRAM:
            raise ValueError("paid_broadcast is a Telegram feature")
        return self


class CredentialsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credentials: dict[str, Text] = Field(
        description="The bot's credentials, whole (a rotated token, a new app secret); "
        "stored encrypted, never returned"
    )


class BotUpdateIn(BaseModel):
    """The fields to change; those left out keep their value."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Loja", "inactivity_threshold_seconds": 900}]},
    )

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    inactivity_threshold_seconds: int | None = Field(
        default=None,
        ge=0,
        le=30 * 86400,
        description="Silence before a conversation counts as inactive; null = default, 0 = off",
    )


class TokenIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"token": "123456:ABC-new-token"}]}
    )

    token: Text = Field(min_length=1, max_length=512, description="The new token; never returned")


class ApiKeyOut(BaseModel):
    prefix: str = Field(description="The key is shown as rg_<prefix>_...")
    name: str
    created_at: datetime
    revoked_at: datetime | None


class BotOut(BaseModel):
    id: int
    name: str
    channel: ChannelKind
    has_credentials: bool
    inactivity_threshold_seconds: int | None
    paid_broadcast: bool
    created_at: datetime
    # Disabled: messages are recorded, nothing acts and nothing is sent (POST .../enable).
    disabled: bool = False


class TimerOut(BaseModel):
    key: str
    purpose: str
    due_at: datetime


class ConversationOut(BaseModel):
    id: int
    bot_id: int
    user_id: str
    status: ConversationStatus
    active_flow: str | None
    active_node: str | None
    context_variables: dict[str, Any]
    activity_seq: int
    last_activity_at: datetime | None
    last_message_at: datetime | None
    last_inbound_message_at: datetime | None
    last_message_from_contact_at: datetime | None
    last_message_from_agent_at: datetime | None
    window_expires_at: datetime | None
    inactivity_due_at: datetime | None
    opened_at: datetime
    closed_at: datetime | None
    pending_timer: TimerOut | None = None


class ConversationEventOut(BaseModel):
    id: int
    kind: str
    reason: str | None
    detail: dict[str, Any]
    created_at: datetime
