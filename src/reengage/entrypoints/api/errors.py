"""How the API answers when a request fails: one error shape, `{"error", "field", "message"}`,
a 4xx for anything the caller sent, and a short 500 with one log line for anything else."""

from __future__ import annotations

import re
import traceback
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, StatementError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reengage.entrypoints.api.schemas import UnstorableValue
from reengage.entrypoints.logging import exception_fields
from reengage.services.errors import ServiceError

log = structlog.get_logger(__name__)

_UNION_BRANCH = re.compile(r"^(?:function-\w+\[.*, )?(EventBatch|EventIn)\]?$")


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _location(err: dict[str, Any]) -> tuple[Any, ...]:
    loc = tuple(err.get("loc", ()))
    # A free-form body's validator says where inside it the bad value sits.
    inner = (err.get("ctx") or {}).get("error")
    return (*loc, *inner.path) if isinstance(inner, UnstorableValue) else loc


def _relevant(errors: list[dict[str, Any]], body: Any) -> list[dict[str, Any]]:
    # A body may be one event or a batch: report only the errors of the shape that was sent.
    shape = "EventBatch" if isinstance(body, dict) and "events" in body else "EventIn"
    out = []
    for err in errors:
        loc = _location(err)
        if loc[:1] == ("body",):
            loc = loc[1:]
            # Union branches are labelled `EventIn` or `function-after[..., EventIn]`.
            branch = _UNION_BRANCH.search(str(loc[0])) if loc else None
            if branch:
                if branch.group(1) != shape:
                    continue
                loc = loc[1:]
        elif loc[:1] in (("path",), ("query",), ("header",)):
            loc = loc[1:]
        out.append({"field": _field_path(loc) or "body", "message": err.get("msg", "invalid")})
    return out


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _relevant(list(exc.errors()), exc.body)
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return JSONResponse(
        status_code=422,
        content={"error": "invalid_input", **first, "errors": errors},
    )


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return JSONResponse(
        status_code=exc.status,
        content={"error": exc.code, "field": exc.field, "message": exc.message},
    )


def _unstorable(exc: BaseException) -> str | None:
    """What is wrong when the database refused a value the request carried; None when the
    failure is not the request's (a lost connection, a constraint, a bug)."""
    if isinstance(exc, DataError):
        # PostgreSQL's first line names the problem (`bigint out of range`), never the values.
        return str(exc.orig).splitlines()[0] if exc.orig else "a value cannot be stored"
    cause = exc.orig if isinstance(exc, StatementError) else exc
    if isinstance(cause, OverflowError):
        return "a number is out of range"
    if isinstance(cause, UnicodeError):
        return "a text is not valid Unicode"
    return None


def _where(exc: BaseException) -> str:
    """The deepest line of reengage's own code the exception passed through."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/reengage/" in f.filename] or frames
    if not ours:
        return "?"
    return f"reengage/{ours[-1].filename.rsplit('/reengage/', 1)[-1]}:{ours[-1].lineno}"


class SafetyNet:
    """The outermost answer: a value the database refused is a 422; anything else unexpected
    is a short JSON 500 and exactly one log line (no traceback, no local variables: a
    hostile client must not be able to flood the logs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            await self._answer(scope, receive, send, exc, started)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, exc: Exception, started: bool
    ) -> None:
        problem = _unstorable(exc)
        fields = {"method": scope["method"], "path": scope["path"], "where": _where(exc)}
        if problem is not None:
            log.warning("api.unstorable_value", problem=problem, **fields)
            status, body = 422, {"error": "invalid_input", "field": None, "message": problem}
        else:
            # One line (a hostile client must not flood the logs): in JSON the traceback, no
            # locals, rides in it; in the console only the exception's type and message do.
            log.error("api.unexpected_error", **exception_fields(exc), **fields)
            status = 500
            body = {"error": "internal_error", "field": None, "message": "unexpected error"}
        if not started:  # after the answer began (a background task), logging is all we can do
            await JSONResponse(status_code=status, content=body)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_middleware(SafetyNet)
