"""Errors a use case reports to its caller; entry points turn them into 4xx answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class ServiceError(Exception):
    """Base of the errors a caller can act on. `message` is English; written as a catalogue
    msgid (`N_("bot {bot_id} not found")`) with its `values` apart, entry points translate
    it into the caller's language (`reengage.i18n`)."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None, **values: Any) -> None:
        self.msgid = message
        self.values = values
        self.message = message.format(**values) if values else message
        self.field = field
        super().__init__(self.message)


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
def parsing(what: str) -> Iterator[None]:
    """Around a domain parser of a caller's free-form JSON. Parsers name the field of every
    mistake they foresee; they are pure, so anything else they raise is still the input's
    fault (a list where an object belongs, a number too large for a date): a 422."""
    try:
        yield
    except ServiceError:
        raise
    except MALFORMED as exc:
        raise InvalidInput(f"{what} is malformed: {exc}"[:300], None) from exc
