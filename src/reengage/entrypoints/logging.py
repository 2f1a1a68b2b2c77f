"""Structured logs: key-value for people, JSON for machines. Secrets never reach them.

Tracebacks are plain (never local variables: they hold settings, URLs with passwords, and
cost seconds to render); every string is redacted of credentials in URLs, bot tokens and
bearer tokens before it is written.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from reengage.redaction import redact

_SECRET_FIELDS = {"credentials", "api_key", "token", "secret", "password"}


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if key in _SECRET_FIELDS:
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = redact(value)
    return event


class _StderrLogger:
    """Writes to whatever `sys.stderr` is at the time of the call (it may be swapped)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)  # noqa: T201

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _stderr_logger(*_: Any) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(json_output: bool = False, level: int = logging.INFO) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # a plain traceback, as a string
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )
