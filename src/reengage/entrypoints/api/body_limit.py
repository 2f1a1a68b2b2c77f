"""A request body larger than the limit is refused with a 413 in the API's error shape, before
it is read: at once when its `Content-Length` says so, or as soon as a chunked body passes the
limit. The media upload has its own, larger limit (a 50 MB file plus its multipart framing).

Pure ASGI: a body whose declared length is within the limit is passed through untouched
(the server reads exactly that many bytes), so the hot paths pay one header look-up."""

from __future__ import annotations

import re
from collections.abc import Mapping

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reengage.entrypoints.api.errors import error_response
from reengage.i18n import N_
from reengage.services.media import MAX_BYTES as MEDIA_MAX_BYTES

# The multipart framing around an uploaded file: boundaries, part headers, the file name.
MULTIPART_ALLOWANCE = 1024 * 1024
LARGER_BODIES = {"/v1/media": MEDIA_MAX_BYTES + MULTIPART_ALLOWANCE}
# The console's form that uploads a media block carries the same file.
LARGER_PATHS = (
    (
        re.compile(r"/console/bots/\d+/campaign/steps/\d+/blocks"),
        MEDIA_MAX_BYTES + MULTIPART_ALLOWANCE,
    ),
)


class _TooLarge(Exception):
    pass


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def too_large(scope: Scope, limit: int) -> JSONResponse:
    return await error_response(
        scope,
        413,
        "payload_too_large",
        "body",
        N_("the request body is larger than {limit} bytes"),
        {"limit": limit},
        {"Connection": "close"},
    )


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int, larger: Mapping[str, int] = LARGER_BODIES) -> None:
        self.app = app
        self.limit = limit
        self.larger = larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self.larger.get(path) or next(
            (most for pattern, most in LARGER_PATHS if pattern.fullmatch(path)), self.limit
        )
        declared = _declared_length(scope)
        if declared is not None:
            if declared > limit:
                await (await too_large(scope, limit))(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """A body of unknown length (chunked): counted as it arrives, cut at the limit."""
        received, exceeded, started = 0, False, False

        async def counted() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded:  # whatever the app makes of a body cut short gives way to the 413
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not exceeded:  # the app's own failure: the safety net answers it
                raise
        if exceeded and not started:
            await (await too_large(scope, limit))(scope, receive, send)
