"""Structured logs: key-value for people, JSON for machines. Secrets never reach them.

Tracebacks are plain (never local variables: they hold settings, URLs with passwords, and
cost seconds to render); every string is redacted of credentials in URLs, bot tokens and
bearer tokens before it is written.
"""

from __future__ import annotations

import logging
import sys
import traceback
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


def _exception_fields(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """`exc_type` and `exc_message` beside the traceback, so that lines can be searched by
    the kind of failure."""
    exc_info = event.get("exc_info")
    if exc_info is True:
        exc_info = sys.exc_info()
    exc = exc_info if isinstance(exc_info, BaseException) else None
    if isinstance(exc_info, tuple):
        exc = exc_info[1]
    if exc is not None:
        event.setdefault("exc_type", type(exc).__name__)
        event.setdefault("exc_message", _first_line(exc))
    return event


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:500] if lines else ""


_json_output = False  # as configured last


def exception_fields(exc: BaseException) -> dict[str, str]:
    """An exception as fields of one log line: its type and message, and with JSON logs its
    plain traceback (no local variables) too; a console line stays one line."""
    fields = {"exc_type": type(exc).__name__, "exc_message": _first_line(exc)}
    if _json_output:
        fields["exception"] = "".join(traceback.format_exception(exc)).rstrip()
    return fields


# uvicorn's access line `client - "METHOD path HTTP/x" status`, as fields.
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


def _stdlib_fields(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    record = event.get("_record")
    args = event.pop("positional_args", None)
    if record is not None:
        event["logger"] = record.name
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            event.update(zip(_ACCESS_FIELDS, args, strict=True))
    return event


def configure_logging(json_output: bool = False, level: int = logging.INFO) -> None:
    """structlog for reengage's own lines; with `json_output`, uvicorn's `uvicorn.error` and
    `uvicorn.access` go through the same processors and JSON renderer (run uvicorn with
    `log_config=None`, or it puts its plain-text handlers back)."""
    global _json_output
    _json_output = json_output
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,  # the request id, among others
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _exception_fields,
        structlog.processors.format_exc_info,  # a plain traceback (no locals), as a string
        _redact,
    ]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=True,
    )
    if json_output:
        _route_stdlib_logging(shared, level)


def _route_stdlib_logging(shared: list[structlog.types.Processor], level: int) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        pass_foreign_args=True,  # uvicorn's access line, taken apart into fields
        foreign_pre_chain=[_stdlib_fields, *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(level)
