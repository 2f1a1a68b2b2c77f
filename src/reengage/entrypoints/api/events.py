"""`POST /v1/events`: record activity.

The hot path runs on the event loop without a thread hop: the API key and the bots come from
the tenant cache and the batch goes to Redis in one script call of the asyncio client. What
needs the database (a key or an organization not cached yet, a subject to seed after Redis
lost it, a status change) runs in the thread pool; messages' texts are stored by one writer
thread, many requests' in one transaction. The body is
parsed and validated in one pass from the raw bytes.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any

import redis.asyncio
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from reengage.adapters.redis.activity_store import RedisActivityStore
from reengage.adapters.redis.sharded_activity import ShardedActivityStore
from reengage.domain.activity import ActivityEvent, Inbound, RecordResult
from reengage.entrypoints.api.deps import RuntimeDep, api_key_header, bearer
from reengage.entrypoints.api.schemas import ErrorOut, EventBatch, EventIn, RecordOut
from reengage.i18n import N_
from reengage.metrics import EVENTS_RECORDED
from reengage.runtime import Runtime
from reengage.services.errors import InvalidInput, Unauthorized
from reengage.services.record_activity import record_on_loop

events_router = APIRouter(prefix="/v1", tags=["activity"])

# Clocks of senders drift; an event further ahead than this is refused, not trusted.
MAX_CLOCK_SKEW = timedelta(minutes=5)

_BODY: TypeAdapter[EventBatch | EventIn] = TypeAdapter(EventBatch | EventIn)


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """The body's JSON schema with its `$defs` written in place (an OpenAPI operation cannot
    point into a schema's own definitions)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inlined(_BODY.json_schema())}},
    }
}


def to_domain(events: list[EventIn], now: datetime) -> list[ActivityEvent]:
    """Domain events, with `occurred_at` defaulted to now and refused when in the future."""
    out = []
    for index, e in enumerate(events):
        at = e.occurred_at or now
        if at > now + MAX_CLOCK_SKEW:
            raise InvalidInput(N_("occurred_at is in the future"), f"events[{index}].occurred_at")
        said = None
        if e.text is not None or e.name is not None or e.time_zone is not None:
            said = Inbound(e.text, e.name, e.time_zone)
        out.append(ActivityEvent(e.id, e.type, e.bot_id, e.user_id, at, e.status, said))
    return out


def parse_events(body: bytes) -> EventBatch | EventIn:
    """One event or a batch, parsed and validated in one pass; a 422 naming the field."""
    try:
        return _BODY.validate_json(body)
    except ValidationError as exc:
        failure = exc
    sent: Any = None
    if any(err["type"] == "json_invalid" for err in failure.errors()):
        # Python's parser takes what the strict one refuses (a lone surrogate in an escape),
        # so that the field's own check can name it.
        try:
            sent = json.loads(body)
            return _BODY.validate_python(sent)
        except ValidationError as exc:
            failure = exc
        except (ValueError, RecursionError):
            pass
    else:
        sent = json.loads(body)
    errors = [{**err, "loc": ("body", *err["loc"])} for err in failure.errors()]
    raise RequestValidationError(errors, body=sent)


async def api_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    x_api_key: Annotated[str | None, Depends(api_key_header)] = None,
) -> str:
    key = credentials.credentials if credentials else x_api_key
    if not key:
        raise Unauthorized(N_("missing API key (Authorization: Bearer <key>)"))
    return key


@events_router.post(
    "/events",
    response_model=RecordOut,
    responses={401: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    openapi_extra=_BODY_DOC,
)
async def post_events(
    request: Request, runtime: RuntimeDep, key: Annotated[str, Depends(api_key)]
) -> Response:
    """Record one event, or a batch as `{"events": [...]}` (up to 1,000).

    Each event moves its conversation's clocks and its one pending inactivity timer. A batch
    is atomic: one invalid event (the error names it, e.g. `events[3].bot_id`) applies none.
    Retrying with the same event ids is safe: they are counted as duplicates.
    """
    tenants = runtime.tenants
    org_id = tenants.cached_org_of_key(key)
    if org_id is None:
        org_id = await run_in_threadpool(tenants.org_of_key, key)
    body = parse_events(await request.body())
    single = isinstance(body, EventIn)
    batch = [body] if isinstance(body, EventIn) else body.events
    try:
        now = runtime.clock.now()
        events = to_domain(batch, now)
        client = getattr(request.app.state, "loop_redis", None)
        result = await recorded_on_loop(runtime, client, org_id, events, now, key)
        if result is None:
            result = await run_in_threadpool(_record, runtime, org_id, events, key)
    except InvalidInput as exc:
        if single and exc.field:
            exc.field = exc.field.removeprefix("events[0].")
        raise
    return _recorded(result)


async def events_on_loop(
    runtime: Runtime, client: redis.asyncio.Redis, org_id: int, key: str, body: bytes
) -> Response | None:
    """`post_events`' answer when the key's organization is known and the batch is recorded
    on the event loop; None, with nothing applied, otherwise (an invalid body raises)."""
    parsed = parse_events(body)
    batch = [parsed] if isinstance(parsed, EventIn) else parsed.events
    now = runtime.clock.now()
    result = await recorded_on_loop(runtime, client, org_id, to_domain(batch, now), now, key)
    return None if result is None else _recorded(result)


def _recorded(result: RecordResult) -> Response:
    EVENTS_RECORDED.labels("accepted").inc(result.accepted)
    EVENTS_RECORDED.labels("duplicate").inc(result.duplicates)
    return Response(
        f'{{"accepted":{result.accepted},"duplicates":{result.duplicates}}}',
        media_type="application/json",
    )


async def recorded_on_loop(
    runtime: Runtime,
    client: redis.asyncio.Redis | None,
    org_id: int,
    events: list[ActivityEvent],
    now: datetime,
    key: str | None = None,
) -> RecordResult | None:
    """The events recorded without a thread hop when memory and Redis suffice, else None
    with nothing applied."""
    store = runtime.activity
    if (
        client is None
        or not isinstance(store, RedisActivityStore | ShardedActivityStore)
        or not runtime.tenants.knows(org_id, {e.bot_id for e in events})
    ):
        return None
    return await record_on_loop(runtime.tenants, store, client, org_id, events, now, key)


def _record(runtime: Runtime, org_id: int, events: list[ActivityEvent], key: str) -> RecordResult:
    # A key revoked since it was cached is refused before the batch is tried again.
    return runtime.record(org_id, events, recheck=lambda: _same_org(runtime, key, org_id), key=key)


def _same_org(runtime: Runtime, key: str, org_id: int) -> None:
    if runtime.tenants.org_of_key(key) != org_id:
        raise Unauthorized(N_("invalid or revoked API key"))
