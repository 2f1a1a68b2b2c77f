"""How the API answers when a request fails: one error shape, `{"error", "field", "message"}`,
a 4xx for anything the caller sent (an unknown route and a wrong method included), and a short
500 with one log line for anything else. `error` and `field` are for programs and never
change; `message` is for people, in the caller's language (`language.language_of`)."""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DataError, StatementError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reengage.entrypoints.api.language import language_of
from reengage.entrypoints.api.openapi import document
from reengage.entrypoints.api.schemas import UnstorableValue
from reengage.entrypoints.api.validation_texts import validation_message
from reengage.entrypoints.logging import exception_fields
from reengage.i18n import N_, translate
from reengage.services.errors import ServiceError

log = structlog.get_logger(__name__)

JSON_TYPES = re.compile(r"application/(?:[\w.+-]+\+)?json\b", re.IGNORECASE)


def error_body(
    language: str,
    code: str,
    field: str | None,
    msgid: str,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The error shape, its message in `language`."""
    message = translate(msgid, language, **(values or {}))
    return {"error": code, "field": field, "message": message}


async def error_response(
    scope: Scope,
    status: int,
    code: str,
    field: str | None,
    msgid: str,
    values: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = error_body(await language_of(scope), code, field, msgid, values)
    return JSONResponse(status_code=status, content=body, headers=headers)


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


def _relevant(errors: list[dict[str, Any]], body: Any, language: str) -> list[dict[str, Any]]:
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
        message = validation_message(err, language)
        out.append({"field": _field_path(loc) or "body", "message": message})
    return out


def _not_json(request: Request, exc: RequestValidationError) -> bool:
    """A body sent with a content type other than JSON to a route that reads JSON."""
    kind = request.headers.get("content-type")
    if not kind or JSON_TYPES.match(kind) or request.method not in ("POST", "PUT", "PATCH"):
        return False
    return isinstance(exc.body, bytes | bytearray) and bool(exc.body)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    language = await language_of(request.scope)
    if _not_json(request, exc):
        return JSONResponse(
            status_code=415,
            content=error_body(
                language,
                "unsupported_media_type",
                "body",
                N_("the body must be JSON (Content-Type: application/json), not {kind}"),
                {"kind": request.headers.get("content-type", "")[:100]},
            ),
        )
    errors = _relevant(list(exc.errors()), exc.body, language)
    first = (
        errors[0]
        if errors
        else {
            "field": "body",
            "message": translate(N_("invalid request"), language),
        }
    )
    return JSONResponse(
        status_code=422,
        content={"error": "invalid_input", **first, "errors": errors},
    )


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    message = exc.text(await language_of(request.scope))
    return JSONResponse(
        status_code=exc.status,
        content={"error": exc.code, "field": exc.field, "message": message},
    )


def _allowed(request: Request) -> str:
    """Every method some route takes at this path (Starlette's `Allow` names only the first
    route that matched the path, and `GET /v1/bots` and `POST /v1/bots` are two routes)."""
    methods: set[str] = set()
    for context in iter_route_contexts(request.app.routes):
        regex = getattr(context, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(context, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """What Starlette itself refuses: an unknown route (404), a method the route does not
    take (405, with `Allow`)."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    method, path = request.method, request.url.path[:200]
    if exc.status_code == 404:
        return await error_response(
            request.scope,
            404,
            "not_found",
            None,
            N_("no such route: {method} {path}"),
            {"method": method, "path": path},
            headers,
        )
    if exc.status_code == 405:
        headers["Allow"] = _allowed(request) or headers.get("Allow", "")
        return await error_response(
            request.scope,
            405,
            "method_not_allowed",
            None,
            N_("{method} is not allowed on {path}; allowed: {allowed}"),
            {"method": method, "path": path, "allowed": headers.get("Allow", "")},
            headers,
        )
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    return await error_response(
        request.scope,
        exc.status_code,
        code,
        None,
        N_("{number} {phrase}"),
        {"number": exc.status_code, "phrase": HTTPStatus(exc.status_code).phrase},
        headers,
    )


def _unstorable(exc: BaseException) -> str | None:
    """What is wrong when the database refused a value the request carried; None when the
    failure is not the request's (a lost connection, a constraint, a bug)."""
    if isinstance(exc, DataError):
        # PostgreSQL's first line names the problem (`bigint out of range`), never the values.
        return str(exc.orig).splitlines()[0] if exc.orig else N_("a value cannot be stored")
    cause = exc.orig if isinstance(exc, StatementError) else exc
    if isinstance(cause, OverflowError):
        return N_("a number is out of range")
    if isinstance(cause, UnicodeError):
        return N_("a text is not valid Unicode")
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
        # Memory only: the database may be what failed.
        language = await language_of(scope, read=False)
        if problem is not None:
            log.warning("api.unstorable_value", problem=problem, **fields)
            status = 422
            body = error_body(language, "invalid_input", None, problem)
        else:
            # One line (a hostile client must not flood the logs): in JSON the traceback, no
            # locals, rides in it; in the console only the exception's type and message do.
            log.error("api.unexpected_error", **exception_fields(exc), **fields)
            status = 500
            body = error_body(language, "internal_error", None, N_("unexpected error"))
        if not started:  # after the answer began (a background task), logging is all we can do
            await JSONResponse(status_code=status, content=body)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(HTTPException, _http_error)
    document(app)  # the OpenAPI document: error responses, security schemes, examples
    app.add_middleware(SafetyNet)
