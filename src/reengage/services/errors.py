"""Errors a use case reports to its caller; entry points turn them into 4xx answers."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the errors a caller can act on."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ServiceError):
    status = 422
    code = "invalid_input"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"
