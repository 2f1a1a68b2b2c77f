"""A small Telegram Bot API client over aiohttp, for the send path.

Every request ends in one of three ways, and which one matters: the platform answered
(`Reply`, whatever its status or body), the connection was never made (`NotSent`: the request
surely did not reach Telegram), or it was made and no answer came (`NoAnswer`: it may have).
aiogram's client folds the last two together and lets an HTML error page escape as a decode
error; here nothing else escapes.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, BinaryIO

import aiohttp

PRODUCTION = "https://api.telegram.org"
# Longer than any answer Telegram takes, shorter than a timer's lease (30 s): a request
# that is still in flight when its timer could be claimed again is over by then.
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=20, connect=5)


class NoReply(Exception):
    """No answer to read; `timed_out` tells a timeout from a broken connection."""

    def __init__(self, detail: str, *, timed_out: bool = False) -> None:
        super().__init__(detail)
        self.timed_out = timed_out


class NotSent(NoReply):
    """No connection to the platform was made: nothing reached it."""


class NoAnswer(NoReply):
    """The request may have reached the platform, and no answer came back."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What the platform answered: the Bot API's `{"ok", "result" | "error_code",
    "description", "parameters"}`, or `body` when the answer was not that (an HTML page)."""

    status: int
    ok: bool = False
    result: Any = None
    error_code: int | None = None
    description: str = ""
    retry_after: int | None = None
    body: str = ""

    @property
    def is_bot_api(self) -> bool:
        return self.error_code is not None or self.ok


@dataclass(frozen=True, slots=True)
class Upload:
    """A file sent with a method: its bytes, or a local file streamed in chunks."""

    field: str
    filename: str
    content: bytes | None
    content_type: str
    path: str | None = None


class BotApi:
    """One aiohttp session (connection pool) per event loop, shared by every bot."""

    def __init__(self, base: str | None) -> None:
        self.base = (base or PRODUCTION).rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=200, limit_per_host=100)
            self._session = aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self,
        token: str,
        method: str,
        params: dict[str, Any],
        upload: Upload | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """POST one method; raise NotSent or NoAnswer when there is no answer to read."""
        with ExitStack() as files:
            data: aiohttp.FormData | None = None
            if upload is not None:
                data = aiohttp.FormData()
                for key, value in params.items():
                    data.add_field(key, value if isinstance(value, str) else json.dumps(value))
                content: bytes | BinaryIO = (
                    files.enter_context(open(upload.path, "rb"))
                    if upload.path is not None
                    else upload.content or b""
                )
                data.add_field(
                    upload.field,
                    content,
                    filename=upload.filename,
                    content_type=upload.content_type,
                )
            return await self._post(f"{self.base}/bot{token}/{method}", params, data, timeout)

    async def _post(
        self,
        url: str,
        params: dict[str, Any],
        data: aiohttp.FormData | None,
        timeout: float | None,
    ) -> Reply:
        http = await self.session()
        limit = REQUEST_TIMEOUT if timeout is None else aiohttp.ClientTimeout(total=timeout)
        try:
            body = None if data else params
            async with http.post(url, json=body, data=data, timeout=limit) as response:
                text = await response.text(errors="replace")
                return parse(response.status, text)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            detail, timed_out = f"{type(exc).__name__}: {exc}", isinstance(exc, TimeoutError)
            raise NotSent(detail, timed_out=timed_out) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = f"{type(exc).__name__}: {exc}".strip()
            raise NoAnswer(detail, timed_out=isinstance(exc, TimeoutError)) from None


def parse(status: int, text: str) -> Reply:
    """A response as the Bot API describes it, or as it came when it is not one."""
    try:
        data = json.loads(text)
    except ValueError:
        return Reply(status, body=text[:300])
    if not isinstance(data, dict) or "ok" not in data:
        return Reply(status, body=text[:300])
    parameters = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
    retry_after = parameters.get("retry_after") if parameters else None
    return Reply(
        status,
        ok=bool(data.get("ok")) and 200 <= status < 300,
        result=data.get("result"),
        error_code=data.get("error_code") if isinstance(data.get("error_code"), int) else None,
        description=str(data.get("description") or ""),
        retry_after=retry_after if isinstance(retry_after, int) else None,
        body="" if data.get("ok") else text[:300],
    )
