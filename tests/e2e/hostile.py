"""Hostile input for the fuzz tests: values the stores cannot hold, and a world of real rows
(an organization, one bot per channel, a campaign, a flow, a conversation) to aim them at."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from reengage.adapters.channels import standard_webhooks
from reengage.domain.activity import ChannelKind
from reengage.entrypoints.api.app import create_app
from reengage.runtime import Runtime
from reengage.testing.whatsapp_wire import inbound_text_payload
from tests.channel_harness import TG_TOKEN, WA_PHONE, WA_TOKEN
from tests.e2e.shop import CAMPAIGN
from tests.factories import make_bot, make_org

BIG = 2**63  # one past PostgreSQL's bigint
TG_SECRET = "tg-webhook-secret"
WA_SECRET = "wa-app-secret"

# Deterministic, bounded runs: the suite's fast lane stays fast, and a failure replays.
# REENGAGE_FUZZ_EXAMPLES=600 digs deeper locally.
EXAMPLES = int(os.environ.get("REENGAGE_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

HOSTILE_INTS = (
    st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**63 - 1, BIG, -(2**63) - 1, 2**64, 10**30])
    | st.integers()
)
HOSTILE_TEXTS = st.sampled_from(
    ["", "\x00", "a\x00b", "\ud800", "x\udfff", "x" * 129, "x" * 5000, "%00", "../.."]
) | st.text(max_size=12)
SCALARS = st.none() | st.booleans() | HOSTILE_INTS | st.floats() | HOSTILE_TEXTS
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(HOSTILE_TEXTS, inner, max_size=3),
    max_leaves=10,
)


def encode(body: Any) -> bytes:
    """JSON as a hostile client sends it: lone surrogates as `\\ud800` escapes, NaN literal."""
    return json.dumps(body).encode()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _replaced(valid: Any, path: tuple[Any, ...], new: Any, extra_key: str | None) -> Any:
    if not path:
        return new
    out = copy.deepcopy(valid)
    parent = out
    for part in path[:-1]:
        parent = parent[part]
    if extra_key is not None and isinstance(parent, dict):
        parent[extra_key] = new
    else:
        parent[path[-1]] = new
    return out


@st.composite
def mutated(draw: st.DrawFn, valid: Any) -> Any:
    """A valid body with one value (or a new key) swapped for something hostile."""
    path = draw(st.sampled_from(_paths(valid)))
    extra = draw(HOSTILE_TEXTS) if draw(st.integers(0, 3)) == 0 else None
    return _replaced(valid, path, draw(JSON), extra)


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@dataclass
class World:
    """Real rows to aim at: the fuzzers reach deep routes only with ids that exist."""

    runtime: Runtime
    client: TestClient
    headers: dict[str, str]
    telegram: int
    whatsapp: int
    generic: int
    generic_secret: str
    simulator: int
    conversation: int

    def path_values(self, path: str) -> dict[str, Any]:
        """A real value for each path parameter of `path`."""
        bot = self.telegram
        for marker, channel_bot in (
            ("/webhooks/whatsapp/", self.whatsapp),
            ("/webhooks/generic/", self.generic),
            ("/v1/simulator/", self.simulator),
        ):
            if path.startswith(marker):
                bot = channel_bot
        return {
            "bot_id": bot,
            "conversation_id": self.conversation,
            "key": "welcome",
            "node": "ask",
            "queue": "default",
            "user_id": "42",
            "step": 0,
            "block": 0,
            "delivery_id": 1,
            "subscription_id": 1,
            "job_id": "0" * 32,
            "telegram_user_id": 5_550_001,
            "prefix": "00000000",  # no key's: the world's own key stays valid
        }

    def call(self, method: str, path: str, body: Any = None) -> Any:
        content = None if body is None else encode(body)
        headers = {**self.headers, "Content-Type": "application/json"}
        return self.client.request(method, path, content=content, headers=headers)


WELCOME = {
    "nodes": [
        {"id": "hello", "type": "message", "text": "Oi!", "next": "ask"},
        {"id": "ask", "type": "question", "text": "Plano?", "var": "plan"},
    ]
}
POLICY = {"timeout": "30m", "reminders": [{"after": "10m", "text": "Ainda aí?"}], "action": "close"}


@contextmanager
def open_world(runtime: Runtime) -> Iterator[World]:
    """The world, served in-process; a 500 is answered, not raised, as a server would."""
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        yield build_world(runtime, client)


def build_world(runtime: Runtime, client: TestClient) -> World:
    org = make_org(runtime)
    bot = make_bot(
        runtime, org.org_id, credentials={"token": TG_TOKEN, "webhook_secret": TG_SECRET}
    )
    wa_credentials = {
        "phone_number_id": WA_PHONE,
        "access_token": WA_TOKEN,
        "app_secret": WA_SECRET,
        "verify_token": "verify-me",
    }
    secret = standard_webhooks.new_secret()
    world = World(
        runtime,
        client,
        {"Authorization": f"Bearer {org.api_key}"},
        bot,
        make_bot(runtime, org.org_id, channel=ChannelKind.WHATSAPP, credentials=wa_credentials),
        make_bot(
            runtime,
            org.org_id,
            channel=ChannelKind.WEBHOOK,
            credentials={"url": "http://127.0.0.1:9/out", "secret": secret},
        ),
        secret,
        make_bot(runtime, org.org_id, channel=ChannelKind.SIMULATOR),
        0,
    )
    for method, path, body in [
        ("PUT", f"/v1/bots/{bot}/campaign", CAMPAIGN),
        ("POST", f"/v1/bots/{bot}/campaign/publish", None),
        ("PUT", f"/v1/bots/{bot}/flows/welcome", WELCOME),
        ("PUT", f"/v1/bots/{bot}/flows/welcome/nodes/ask/policy", POLICY),
        (
            "POST",
            "/v1/events",
            {"id": "w-1", "type": "message.user", "bot_id": bot, "user_id": "42"},
        ),
    ]:
        r = world.call(method, path, body)
        assert r.status_code < 300, r.text
    [conversation] = world.call("GET", "/v1/conversations").json()
    world.conversation = conversation["id"]
    return world


def telegram_update(user: int = 42) -> dict[str, Any]:
    sender = {"id": user, "first_name": "Ana", "language_code": "pt-br"}
    return {
        "update_id": 7,
        "message": {"message_id": 1, "chat": {"id": user}, "from": sender, "text": "oi"},
        "callback_query": {"id": "cq", "from": sender},
        "my_chat_member": {"chat": {"id": user}, "new_chat_member": {"status": "kicked"}},
    }


def whatsapp_payload() -> dict[str, Any]:
    return inbound_text_payload(
        WA_PHONE, "15550001234", "5511988887777", "oi", "wamid.1", int(time.time())
    )


def whatsapp_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(WA_SECRET.encode(), body, hashlib.sha256).hexdigest()


def generic_headers(secret: str, msg_id: str, body: bytes) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": standard_webhooks.sign(secret, msg_id, stamp, body),
    }
