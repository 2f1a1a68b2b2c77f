"""Platform faults in front of a fake, switched at runtime over HTTP, for a fake that runs in
a process of its own (chaos runs).

`FaultyPlatform(inner)` is an ASGI app that passes requests to the fake unless a fault window
is open: `html_502` answers an nginx-style HTML page with status 502 (what a platform's
gateway answers when its backend is down; the fake never sees the request), `hang` accepts
the request and never answers until the client gives up. Every request is logged with the
client's port, its start and end (wall clock, so another process on the machine can line
them up with its own events) and its outcome.

`telegram_platform(fake)` mounts the Bot API behind `FaultyPlatform` and, beside it, a
control app under `/_control`:

- `POST /_control/fault {"mode": "html_502" | "hang" | "none", "seconds": 10}`
- `GET /_control/sent`: every message the fake accepted (bot id, chat id, text);
  `GET /_control/count`: how many, and how many requests flood control refused
- `GET /_control/refused`: 429s from flood control, and requests answered by a fault
- `GET /_control/requests?since=<unix time>`: the request log; `GET /_control/open`: how
  many requests are in flight
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reengage.testing.telegram import FakeTelegram

Mode = Literal["none", "html_502", "hang"]
MODES: tuple[Mode, ...] = ("none", "html_502", "hang")
BAD_GATEWAY = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)
MAX_HANG = 3600.0  # a hung request is let go when its client disconnects, or after this


@dataclass
class RequestRecord:
    """One request as the platform saw it; `outcome` is the HTTP status it was answered with,
    `hung` (never answered: the client gave up) or `open` while in flight."""

    id: int
    path: str
    client_port: int | None
    started: float
    ended: float | None = None
    outcome: int | str = "open"


class FaultyPlatform:
    """ASGI middleware: the inner app, or a fault while a window is open."""

    def __init__(self, inner: ASGIApp, *, now: Any = time.time) -> None:
        self._inner = inner
        self._now = now
        self._mode: Mode = "none"
        self._until = 0.0
        self._ids = itertools.count(1)
        self.requests: list[RequestRecord] = []

    def open_window(self, mode: Mode, seconds: float) -> None:
        """From now on, for `seconds`, answer every request with the fault `mode`."""
        self._mode, self._until = mode, self._now() + seconds

    def mode(self) -> Mode:
        return self._mode if self._now() < self._until else "none"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        client = scope.get("client")
        record = RequestRecord(
            next(self._ids), scope["path"], client[1] if client else None, self._now()
        )
        self.requests.append(record)
        mode = self.mode()
        try:
            if mode == "hang":
                await _wait_for_disconnect(receive)
                record.outcome = "hung"
            elif mode == "html_502":
                await Response(BAD_GATEWAY, 502, media_type="text/html")(scope, receive, send)
                record.outcome = 502
            else:
                await self._inner(scope, receive, _status_into(record, send))
        finally:
            record.ended = self._now()


async def _wait_for_disconnect(receive: Receive) -> None:
    async def drain() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(drain(), MAX_HANG)


def _status_into(record: RequestRecord, send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.outcome = int(message["status"])
        await send(message)

    return sending


def control_app(fake: FakeTelegram, faults: FaultyPlatform) -> Starlette:
    """Switch faults and read back what the platform saw (JSON)."""

    async def fault(request: Request) -> Response:
        body = await request.json()
        mode, seconds = body.get("mode"), float(body.get("seconds", 0))
        if mode not in MODES:
            return JSONResponse({"error": f"mode must be one of {MODES}"}, 400)
        faults.open_window(mode, seconds)
        return JSONResponse({"mode": faults.mode(), "seconds": seconds})

    async def sent(_: Request) -> Response:
        messages = fake.sent_messages()
        return JSONResponse(
            [
                {"bot_id": m.bot_id, "chat_id": m.chat_id, "text": m.text or m.caption or ""}
                for m in messages
            ]
        )

    async def count(_: Request) -> Response:
        refused = len(fake.flood.refused) if fake.flood else 0
        return JSONResponse({"sent": fake.message_count(), "rate_limited": refused})

    async def refused(_: Request) -> Response:
        rate_limited = [
            {"token": c.token, "method": c.method, "chat_id": c.params.get("chat_id")}
            for c in (fake.flood.refused if fake.flood else [])
        ]
        faulted = [
            asdict(r) for r in faults.requests if r.outcome in ("hung", 502) and "/bot" in r.path
        ]
        return JSONResponse({"rate_limited": rate_limited, "faulted": faulted})

    async def requests(request: Request) -> Response:
        since = float(request.query_params.get("since", 0))
        return JSONResponse([asdict(r) for r in faults.requests if r.started >= since])

    async def open_requests(_: Request) -> Response:
        return JSONResponse({"open": sum(1 for r in faults.requests if r.ended is None)})

    return Starlette(
        routes=[
            Route("/fault", fault, methods=["POST"]),
            Route("/sent", sent),
            Route("/count", count),
            Route("/refused", refused),
            Route("/requests", requests),
            Route("/open", open_requests),
        ]
    )


def telegram_platform(fake: FakeTelegram) -> Starlette:
    """The fake Bot API behind `FaultyPlatform`, and its control app under `/_control`."""
    faults = FaultyPlatform(fake.app)
    return Starlette(routes=[Mount("/_control", control_app(fake, faults)), Mount("/", faults)])
