"""The hot paths, answered beneath the routing: `POST /v1/events` with a cached API key, and
the Telegram and WhatsApp webhooks of cached bots, recorded on the event loop.

Most integrations call reengage once per chat message, so these requests are most of the
load; FastAPI's routing, dependency solving and exception wrappers cost about as much CPU as
the recording itself. This ASGI layer sits inside the request id, the safety net and the body
limit, reads the body once and answers what memory and Redis suffice for. Anything else (a
key or bot not cached, a status change, a subject to seed, an invalid body, a bad signature)
goes on to the routes with the same body and nothing applied: they check it the full way and
give the precise error.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi.exceptions import RequestValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reengage.entrypoints.api.events import events_on_loop
from reengage.entrypoints.api.webhooks import telegram_on_loop, whatsapp_on_loop
from reengage.runtime import Runtime
from reengage.services.errors import ServiceError

# A bot id as the routes accept it (1 to 2^63-1): 18 digits at most are always in range.
_WEBHOOK = re.compile(r"/webhooks/(telegram|whatsapp)/([1-9][0-9]{0,17})")
_JSON = [(b"content-type", b"application/json")]

Attempt = Callable[[], Awaitable[Response | None]]


async def _body(receive: Receive) -> bytes | None:
    """The whole body, or None when the client went away."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def header_of(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def api_key_of(scope: Scope) -> str | None:
    """`Authorization: Bearer <key>`, else `X-API-Key` (as the route's dependencies read it)."""
    authorization = header_of(scope, b"authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials:
            return credentials
    return header_of(scope, b"x-api-key")


class HotPaths:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/v1/events":
            await self._events(scope, receive, send)
            return
        match = _WEBHOOK.fullmatch(path)
        if match is None:
            await self.app(scope, receive, send)
            return
        await self._webhook(scope, receive, send, match[1], int(match[2]))

    async def _events(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state
        runtime: Runtime = state.runtime
        key = api_key_of(scope)
        org_id = runtime.tenants.cached_org_of_key(key) if key else None
        client = getattr(state, "loop_redis", None)
        if org_id is None or client is None or key is None:
            await self.app(scope, receive, send)
            return
        body = await _body(receive)
        if body is None:
            return
        await self._answer(
            scope, receive, send, body, lambda: events_on_loop(runtime, client, org_id, key, body)
        )

    async def _webhook(
        self, scope: Scope, receive: Receive, send: Send, channel: str, bot_id: int
    ) -> None:
        state = scope["app"].state
        runtime: Runtime = state.runtime
        client = getattr(state, "loop_redis", None)
        if client is None or runtime.tenants.cached_bot(bot_id) is None:
            await self.app(scope, receive, send)
            return
        body = await _body(receive)
        if body is None:
            return
        attempt: Attempt
        if channel == "telegram":
            secret = header_of(scope, b"x-telegram-bot-api-secret-token")
            attempt = lambda: telegram_on_loop(runtime, client, bot_id, body, secret)  # noqa: E731
        else:
            signature = header_of(scope, b"x-hub-signature-256")
            attempt = lambda: whatsapp_on_loop(runtime, client, bot_id, body, signature)  # noqa: E731
        await self._answer(scope, receive, send, body, attempt)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, body: bytes, attempt: Attempt
    ) -> None:
        """The attempt's answer; the routes' when it has none (nothing was applied then)."""
        try:
            response = await attempt()
        except (ServiceError, RequestValidationError):
            response = None  # refused before anything was written: the route names why
        if response is not None:
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
