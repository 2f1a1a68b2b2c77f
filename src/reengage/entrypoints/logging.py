"""Structured logs: key-value for people, JSON for machines. Secrets never reach them.

Tracebacks are plain (never local variables: they hold settings, URLs with passwords, and
cost seconds to render); every string is redacted of credentials in URLs, bot tokens and
bearer tokens before it is written.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from reengage.config import Settings
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


class RepeatLimit:
    """At most `per_minute` lines of one event name and level a minute (info and above; debug
    is asked for, so it is all written). The rest are dropped and counted: the next line of
    that event that is written carries `suppressed=<count>`."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self._clock = per_minute, clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], list[float]] = {}  # start, written, dropped

    def __call__(
        self, _logger: Any, name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if name == "debug" or self.per_minute <= 0:
            return event
        key, at = (str(event.get("event")), name), self._clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or at - window[0] >= 60.0:
                dropped = int(window[2]) if window else 0
                window = self._windows[key] = [at, 0, 0]
                if dropped:
                    event["suppressed"] = dropped
            if window[1] >= self.per_minute:
                window[2] += 1
                raise structlog.DropEvent
            window[1] += 1
        return event


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


def configure_logging(
    json_output: bool = False, level: int = logging.INFO, repeats_per_minute: int = 0
) -> None:
    """structlog for reengage's own lines; with `json_output`, uvicorn's `uvicorn.error` and
    `uvicorn.access` go through the same processors and JSON renderer (run uvicorn with
    `log_config=None`, or it puts its plain-text handlers back). `repeats_per_minute`: lines
    of one event and level written a minute at most (0: all; see `RepeatLimit`)."""
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
        # Only reengage's own lines are limited: a drop inside the standard library's
        # formatter would be an error in the caller (uvicorn's access line, mid-response).
        processors=[RepeatLimit(repeats_per_minute), *shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        # Not cached: a module's logger follows a later configuration (another level), and a
        # line below the level still costs about a microsecond.
        cache_logger_on_first_use=False,
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


def configure_logging_from(settings: Settings) -> None:
    """`configure_logging` as the settings ask: format, level, repeats."""
    configure_logging(
        settings.log_json,
        logging.getLevelNamesMapping()[settings.log_level.upper()],
        settings.log_repeats_per_minute,
    )
