"""Every request carries an id: the caller's `X-Request-ID` when it is a sane one, else a new
one. It is bound into the log context for the request's lines (uvicorn's access line
included) and returned in the response's `X-Request-ID`.

Pure ASGI and a few microseconds: it wraps the hot paths (`POST /v1/events`, webhooks) too."""

from __future__ import annotations

import re
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
# Short and plain: it is logged and echoed, so it must not carry anything else.
_ACCEPTED = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def request_id_of(scope: Scope) -> str:
    """The caller's id when it is 1-128 characters of `A-Za-z0-9._:-`; otherwise a new one."""
    for name, value in scope["headers"]:
        if name == HEADER:
            if _ACCEPTED.fullmatch(value):
                accepted: str = value.decode()
                return accepted
            break
    return uuid.uuid4().hex


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        encoded = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (HEADER, encoded)]
                message = {**message, "headers": headers}
            await send(message)

        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
