"""A fake WhatsApp Cloud API (Graph API) speaking the real wire format.

Routes, under any version prefix such as `/v21.0`:
`POST /{version}/{phone_number_id}/messages` (JSON; also `{"status": "read"}` receipts),
`POST /{version}/{phone_number_id}/media` (multipart: `file`, `type`, `messaging_product`),
`GET|DELETE /{version}/{media_id}`, and the download URL that GET returns. Every route needs
`Authorization: Bearer <token>` (or `?access_token=`). Refusals use the Graph error envelope
(see `whatsapp_wire.GraphError`). Every call is recorded; failures are scriptable from any
thread. Inbound webhook payloads come from the static builders (`inbound_text_payload`, ...).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reengage.testing import whatsapp_wire as wire
from reengage.testing.whatsapp_wire import GraphError, invalid, required, wa_id_of

__all__ = ["FakeWhatsApp", "GraphError", "StoredMedia", "WhatsAppCall", "WhatsAppMessage"]

_VERSION = re.compile(r"v\d+\.\d+")
Files = dict[str, tuple[str, str, bytes]]  # field -> (file name, content type, content)


@dataclass
class WhatsAppCall:
    kind: str  # "messages", "media", "media_info", "media_delete", "media_download"
    http_method: str
    path: str
    phone_number_id: str | None
    token: str | None
    body: dict[str, Any]  # the JSON body, or the form fields (or the query of a download)
    files: dict[str, bytes]
    at: datetime


@dataclass
class WhatsAppMessage:
    id: str  # "wamid...."
    phone_number_id: str
    to: str  # as sent
    wa_id: str
    type: str
    body: dict[str, Any]  # the whole request body
    at: datetime

    @property
    def text(self) -> str | None:
        """The text body, or the media caption."""
        part = self.body.get(self.type)
        if not isinstance(part, dict):
            return None
        value = part.get("body", part.get("caption"))
        return None if value is None else str(value)


@dataclass
class StoredMedia:
    id: str
    mime_type: str
    content: bytes
    file_name: str | None
    phone_number_id: str | None
    deleted: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class _Failure:
    kind: str
    error: GraphError
    wa_id: str | None
    times: int


class FakeWhatsApp:
    """The Cloud API fake; serve `.app` with `fakes.server.serve`. With `access_tokens` only
    those tokens are valid, otherwise any non-empty one (until `revoke_token`)."""

    inbound_payload = staticmethod(wire.inbound_payload)
    inbound_text_payload = staticmethod(wire.inbound_text_payload)
    status_payload = staticmethod(wire.status_payload)
    status_error = staticmethod(wire.status_error)
    signature = staticmethod(wire.signature)

    def __init__(
        self, *, access_tokens: Iterable[str] | None = None, now: Callable[[], float] = time.time
    ) -> None:
        self._tokens = None if access_tokens is None else set(access_tokens)
        self._now = now
        self._lock = threading.Lock()
        self._calls: list[WhatsAppCall] = []
        self._messages: list[WhatsAppMessage] = []
        self._media: dict[str, StoredMedia] = {}
        self._failures: list[_Failure] = []
        self._closed: set[str] = set()
        self._revoked: set[str] = set()
        self._read: list[str] = []
        self._serial = 0
        self.app = Starlette(
            routes=[
                Route("/whatsapp_business/attachments/", self._download, methods=["GET"]),
                Route("/{version}/{phone_number_id}/messages", self._endpoint, methods=["POST"]),
                Route("/{version}/{phone_number_id}/media", self._endpoint, methods=["POST"]),
                Route("/{version}/{media_id}", self._endpoint, methods=["GET", "DELETE"]),
            ]
        )

    # ---- recording (thread-safe) ----

    @property
    def calls(self) -> list[WhatsAppCall]:
        """Every request, in order (a snapshot)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, kind: str) -> list[WhatsAppCall]:
        return [c for c in self.calls if c.kind == kind]

    def sent_messages(self, to: str | None = None) -> list[WhatsAppMessage]:
        """Accepted messages in order (copies); `to` matches by digits."""
        key = None if to is None else wa_id_of(to)
        with self._lock:
            return [copy.deepcopy(m) for m in self._messages if key in (None, m.wa_id)]

    def read_receipts(self) -> list[str]:
        """The wamids marked as read (`{"status": "read", "message_id": ...}`)."""
        with self._lock:
            return list(self._read)

    def media(self, media_id: str) -> StoredMedia | None:
        with self._lock:
            return self._media.get(media_id)

    def add_media(self, content: bytes, mime_type: str, file_name: str | None = None) -> str:
        """Store media as if a user had sent it (for inbound media payloads); returns its id."""
        with self._lock:
            return self._store(content, mime_type, file_name, None).id

    def reset(self) -> None:
        """Forget calls, messages, media, scripted failures, closed windows, revocations."""
        with self._lock:
            for store in (self._calls, self._messages, self._failures, self._read):
                store.clear()
            self._media.clear()
            self._closed.clear()
            self._revoked.clear()

    # ---- scripting (thread-safe) ----

    def fail_next(
        self,
        kind: str = "messages",
        *,
        code: int,
        message: str,
        details: str = "",
        http_status: int = 400,
        to: str | None = None,
        times: int = 1,
        error_subcode: int | None = None,
    ) -> None:
        """The next `times` calls of `kind` ("messages" or "media"; to `to` if given) are
        refused with this Graph error. `message` is used verbatim; Graph's own messages read
        "(#<code>) <title>"."""
        error = GraphError(code, message, details, http_status=http_status, subcode=error_subcode)
        self._script(_Failure(kind, error, None if to is None else wa_id_of(to), times))

    def fail_next_code(self, code: int, *, to: str | None = None, times: int = 1) -> None:
        """A documented error (`whatsapp_wire.KNOWN_ERRORS`) as the answer to /messages."""
        self._script(_Failure("messages", GraphError.known(code), to and wa_id_of(to), times))

    def reengagement_next(self, *, to: str | None = None, times: int = 1) -> None:
        """131047: more than 24 hours since the customer last replied."""
        self.fail_next_code(131047, to=to, times=times)

    def rate_limit_next(self, *, to: str | None = None, times: int = 1) -> None:
        """130429: Cloud API throughput reached."""
        self.fail_next_code(130429, to=to, times=times)

    def pair_rate_limit_next(self, *, to: str | None = None, times: int = 1) -> None:
        """131056: too many messages to the same recipient in a short time."""
        self.fail_next_code(131056, to=to, times=times)

    def undeliverable_next(self, *, to: str | None = None, times: int = 1) -> None:
        """131026: the recipient cannot receive the message."""
        self.fail_next_code(131026, to=to, times=times)

    def close_window(self, to: str) -> None:
        """Non-template messages to `to` are refused with 131047 until `open_window`."""
        with self._lock:
            self._closed.add(wa_id_of(to))

    def open_window(self, to: str) -> None:
        with self._lock:
            self._closed.discard(wa_id_of(to))

    def revoke_token(self, token: str) -> None:
        """Calls with `token` answer 401, code 190, subcode 463 (session expired)."""
        with self._lock:
            self._revoked.add(token)

    def _script(self, failure: _Failure) -> None:
        with self._lock:
            self._failures.append(failure)

    # ---- HTTP ----

    async def _endpoint(self, request: Request) -> Response:
        path = request.url.path
        kind = {"GET": "media_info", "DELETE": "media_delete"}.get(request.method)
        kind = kind or path.rsplit("/", 1)[-1]
        body: dict[str, Any] = {}
        files: Files = {}
        bad_json = False
        if request.method == "POST" and "json" in request.headers.get("content-type", ""):
            try:
                loaded = json.loads(await request.body())
            except ValueError:
                loaded = None
            bad_json = not isinstance(loaded, dict)
            body = loaded if isinstance(loaded, dict) else {}
        elif request.method == "POST":
            async with request.form(max_part_size=16 << 20) as form:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        content = await value.read()
                        files[key] = (value.filename or key, value.content_type or "", content)
                    else:
                        body[key] = value
        token = _bearer(request)
        phone = request.path_params.get("phone_number_id")
        with self._lock:
            self._record(kind, request, phone, token, body, {k: v[2] for k, v in files.items()})
            try:
                self._check(request, token)
                if bad_json:
                    raise invalid("The request body must be a JSON object.")
                result = self._handle(kind, request, body, files)
            except GraphError as exc:
                return exc.response()
        return JSONResponse(result)

    def _record(
        self,
        kind: str,
        request: Request,
        phone: str | None,
        token: str | None,
        body: dict[str, Any],
        files: dict[str, bytes],
    ) -> None:
        at = datetime.fromtimestamp(self._now(), UTC)
        path = request.url.path
        self._calls.append(WhatsAppCall(kind, request.method, path, phone, token, body, files, at))

    def _valid_token(self, token: str | None) -> bool:
        return bool(token) and (self._tokens is None or token in self._tokens)

    def _check(self, request: Request, token: str | None) -> None:
        if not _VERSION.fullmatch(request.path_params["version"]):
            raise GraphError(2500, f"Unknown path components: {request.url.path}")
        if token in self._revoked:
            message = "Error validating access token: Session has expired."
            raise GraphError(190, message, http_status=401, subcode=463)
        if not self._valid_token(token):
            message = "Invalid OAuth access token - Cannot parse access token"
            raise GraphError(190, message, http_status=401)

    def _handle(
        self, kind: str, request: Request, body: dict[str, Any], files: Files
    ) -> dict[str, Any]:
        if kind == "messages":
            return self._send(request.path_params["phone_number_id"], body)
        if kind == "media":
            return self._upload(request.path_params["phone_number_id"], body, files)
        media_id = request.path_params["media_id"]
        if kind == "media_info" and "display_phone_number" in request.query_params.get(
            "fields", ""
        ):  # the phone-number lookup: any number id is one of the account's
            return {
                "id": media_id,
                "display_phone_number": f"+1 555-{media_id[-7:]}",
                "verified_name": "Test Business",
            }
        media = self._media.get(media_id)
        if media is None or media.deleted:
            verb = "get" if kind == "media_info" else "delete"
            message = (
                f"Unsupported {verb} request. Object with ID '{media_id}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this "
                "operation. Please read the Graph API documentation at "
                "https://developers.facebook.com/docs/graph-api"
            )
            raise GraphError(100, message, subcode=33, type_="GraphMethodException")
        if kind == "media_delete":
            media.deleted = True
            return {"success": True}
        base = str(request.base_url).rstrip("/")
        query = f"mid={media.id}&ext={int(self._now())}&hash={media.sha256[:24]}"
        return {
            "messaging_product": "whatsapp",
            "url": f"{base}/whatsapp_business/attachments/?{query}",
            "mime_type": media.mime_type,
            "sha256": media.sha256,
            "file_size": len(media.content),
            "id": media.id,
        }

    def _scripted(self, kind: str, wa_id: str | None) -> None:
        for failure in self._failures:
            if failure.kind == kind and failure.wa_id in (None, wa_id):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                raise failure.error

    def _send(self, phone_number_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("messaging_product") != "whatsapp":
            raise required("messaging_product")
        if body.get("status") == "read":
            if not body.get("message_id"):
                raise required("message_id")
            self._read.append(str(body["message_id"]))
            return {"success": True}
        to = str(body.get("to") or "")
        if not to:
            raise required("to")
        wa_id = wa_id_of(to)
        self._scripted("messages", wa_id)
        kind = str(body.get("type", "text"))  # Graph defaults the type to text
        if kind not in wire.MESSAGE_TYPES:
            raise invalid(f"Param type must be one of {{{', '.join(wire.MESSAGE_TYPES)}}}")
        if body.get("recipient_type", "individual") not in ("individual", "group"):
            raise invalid("Param recipient_type must be one of {individual, group}")
        if wa_id in self._closed and kind != "template":
            raise GraphError.known(131047)
        wire.validate_message(kind, body.get(kind), self._media_exists)
        self._serial += 1
        wamid = wire.new_wamid(wa_id, self._serial)
        at = datetime.fromtimestamp(self._now(), UTC)
        self._messages.append(WhatsAppMessage(wamid, phone_number_id, to, wa_id, kind, body, at))
        sent: dict[str, Any] = {"id": wamid}
        if kind == "template":
            sent["message_status"] = "accepted"
        contacts = [{"input": to, "wa_id": wa_id}]
        return {"messaging_product": "whatsapp", "contacts": contacts, "messages": [sent]}

    def _media_exists(self, media_id: str) -> bool:
        media = self._media.get(media_id)
        return media is not None and not media.deleted

    def _upload(self, phone_number_id: str, form: dict[str, Any], files: Files) -> dict[str, Any]:
        if form.get("messaging_product") != "whatsapp":
            raise required("messaging_product")
        if "file" not in files:
            raise required("file")
        if not form.get("type"):
            raise required("type")
        self._scripted("media", None)
        name, _, content = files["file"]
        mime = str(form["type"]).split(";")[0].strip()
        wire.check_upload(mime, len(content))
        return {"id": self._store(content, mime, name, phone_number_id).id}

    def _store(self, content: bytes, mime: str, name: str | None, phone: str | None) -> StoredMedia:
        self._serial += 1
        media_id = str(1_000_000_000_000_000 + self._serial * 7_919 + secrets.randbelow(7_919))
        self._media[media_id] = media = StoredMedia(media_id, mime, content, name, phone)
        return media

    async def _download(self, request: Request) -> Response:
        token = _bearer(request)
        with self._lock:
            query = dict(request.query_params)
            self._record("media_download", request, None, token, query, {})
            if token in self._revoked or not self._valid_token(token):
                return Response(status_code=401)
            media = self._media.get(query.get("mid", ""))
            if media is None or media.deleted:
                return Response(status_code=404)
            return Response(media.content, media_type=media.mime_type)


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("access_token") or None
