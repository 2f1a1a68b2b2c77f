"""Errors a use case reports to its caller; entry points turn them into 4xx answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, Self

from reengage.i18n import translate


class SaysItself(Protocol):
    """A domain error with its own text in each language (`ScheduleError`, `DraftError`)."""

    def message(self, language: str = ...) -> str: ...


class ServiceError(Exception):
    """Base of the errors a caller can act on. `message` is English; written as a catalogue
    msgid (`N_("bot {bot_id} not found")`) with its `values` apart, entry points translate
    it into the caller's language (`reengage.i18n`)."""

    status = 400
    code = "bad_request"
    said_by: SaysItself | None = None

    def __init__(self, message: str, field: str | None = None, **values: Any) -> None:
        self.msgid = message
        self.values = values
        self.message = message.format(**values) if values else message
        self.field = field
        super().__init__(self.message)

    @classmethod
    def of(cls, error: SaysItself, field: str | None = None) -> Self:
        """`error` (a domain error that says itself in each language) as this one: its
        `text(language)` is the domain error's `message(language)`."""
        made = cls(error.message("en"), field)
        made.said_by = error
        return made

    def text(self, language: str) -> str:
        """The message in `language` (the catalogue's, or the wrapped domain error's)."""
        if self.said_by is not None:
            return self.said_by.message(language)
        return translate(self.msgid, language, **self.values)


class InvalidInput(ServiceError):
    status = 422
    code = "invalid_input"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


# What a pure parser of a caller's JSON raises when a value has an unexpected type or size.
MALFORMED = (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError)


@contextmanager
def parsing(malformed: str) -> Iterator[None]:
    """Around a domain parser of a caller's free-form JSON. Parsers name the field of every
    mistake they foresee; they are pure, so anything else they raise is still the input's
    fault (a list where an object belongs, a number too large for a date): a 422 saying
    `malformed`, a catalogue msgid (`N_("the flow is malformed: {problem}")`)."""
    try:
        yield
    except ServiceError:
        raise
    except MALFORMED as exc:
        raise InvalidInput(malformed, None, problem=str(exc)[:250]) from exc
