"""Managing what runs through the API: a bot renamed, its threshold changed, its token
rotated; API keys listed by prefix and revoked, a revoked key refused at once (through the
API-key cache of the Redis mode too); every mistake a precise 4xx and no change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reengage.adapters.db.models import Bot
from reengage.entrypoints.api.app import create_app
from reengage.runtime import Runtime
from reengage.services.tenancy import issue_api_key
from tests.e2e.harness import MODES, runtime_in_mode
from tests.factories import make_org


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Runtime:
    return runtime_in_mode(request, tmp_path)


class Org:
    def __init__(self, client: TestClient, runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime
        created = make_org(runtime)
        self.org_id = created.org_id
        self.key = created.api_key

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        key: str | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return self.client.request(method, path, json=body, headers=headers, params=params)


@pytest.fixture
def org(runtime: Runtime) -> Iterator[Org]:
    with TestClient(create_app(runtime)) as client:
        yield Org(client, runtime)


def _bot(org: Org, **extra: Any) -> dict[str, Any]:
    body = {"name": "Loja", "channel": "telegram", "credentials": {"token": "1:old"}} | extra
    answer = org.call("post", "/v1/bots", body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _credentials(org: Org, bot_id: int) -> dict[str, Any]:
    with org.runtime.sessions() as session:
        bot = session.get(Bot, bot_id)
        assert bot is not None
        return org.runtime.credentials.of(bot_id, bot.credentials)


def test_a_bot_is_renamed_and_its_threshold_changed(org: Org) -> None:
    bot = _bot(org, inactivity_threshold_seconds=600)
    renamed = org.call("patch", f"/v1/bots/{bot['id']}", {"name": "Loja 2"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Loja 2"
    assert renamed.json()["inactivity_threshold_seconds"] == 600  # left out: unchanged
    changed = org.call("patch", f"/v1/bots/{bot['id']}", {"inactivity_threshold_seconds": 900})
    assert changed.json()["inactivity_threshold_seconds"] == 900
    reset = org.call("patch", f"/v1/bots/{bot['id']}", {"inactivity_threshold_seconds": None})
    assert reset.json()["inactivity_threshold_seconds"] is None
    assert org.call("get", f"/v1/bots/{bot['id']}").json()["name"] == "Loja 2"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, None),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"inactivity_threshold_seconds": -1}, "inactivity_threshold_seconds"),
        ({"channel": "whatsapp"}, "channel"),
    ],
)
def test_a_bad_update_is_a_422_and_changes_nothing(
    org: Org, body: dict[str, Any], field: str | None
) -> None:
    bot = _bot(org)
    answer = org.call("patch", f"/v1/bots/{bot['id']}", body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_input"
    assert answer.json()["field"] == field
    assert org.call("get", f"/v1/bots/{bot['id']}").json() == bot


def test_another_organizations_bot_is_not_found(org: Org) -> None:
    bot = _bot(org)
    other = make_org(org.runtime, "Outra")
    for method, path, body in [
        ("patch", f"/v1/bots/{bot['id']}", {"name": "x"}),
        ("put", f"/v1/bots/{bot['id']}/token", {"token": "1:new"}),
    ]:
        answer = org.call(method, path, body, key=other.api_key)
        assert answer.status_code == 404, answer.text
        assert answer.json()["field"] == "bot_id"
    assert _credentials(org, bot["id"]) == {"token": "1:old"}


def test_a_token_is_rotated_and_the_other_credentials_kept(org: Org) -> None:
    bot = _bot(org)
    with org.runtime.sessions.begin() as session:
        row = session.get(Bot, bot["id"])
        assert row is not None
        row.credentials = org.runtime.credentials.encrypt({"token": "1:old", "webhook_secret": "w"})
    answer = org.call("put", f"/v1/bots/{bot['id']}/token", {"token": "1:new"})
    assert answer.status_code == 200, answer.text
    assert "1:new" not in answer.text
    assert _credentials(org, bot["id"]) == {"token": "1:new", "webhook_secret": "w"}


def test_a_bot_without_a_token_has_none_to_rotate(org: Org) -> None:
    bot = _bot(org, channel="simulator", credentials=None)
    answer = org.call("put", f"/v1/bots/{bot['id']}/token", {"token": "x"})
    assert answer.status_code == 422
    assert "bots simulator não têm token" in answer.json()["message"]  # the org's pt-BR
    empty = org.call("put", f"/v1/bots/{_bot(org)['id']}/token", {"token": ""})
    assert empty.status_code == 422
    assert empty.json()["field"] == "token"


def test_keys_are_listed_by_prefix_and_a_revoked_key_is_refused_at_once(org: Org) -> None:
    runtime = org.runtime
    second = issue_api_key(runtime.sessions, org.org_id, "ci", runtime.clock.now())
    prefix = second.split("_")[1]
    assert org.call("get", "/v1/bots", key=second).status_code == 200  # cached now (Redis)
    keys = org.call("get", "/v1/api-keys").json()
    assert [k["name"] for k in keys] == ["default", "ci"]
    assert all(k["revoked_at"] is None for k in keys)
    assert second not in str(keys)
    [found] = org.call("get", "/v1/api-keys", params={"prefix": prefix[:6]}).json()
    assert found["prefix"] == prefix

    revoked = org.call("delete", f"/v1/api-keys/{prefix}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None
    refused = org.call("get", "/v1/bots", key=second)
    assert refused.status_code == 401
    events = {"id": "e-1", "type": "message.user", "bot_id": _bot(org)["id"], "user_id": "u"}
    assert org.call("post", "/v1/events", events, key=second).status_code == 401
    assert org.call("post", "/v1/events", events).status_code == 200  # the other key still works
    again = org.call("delete", f"/v1/api-keys/{prefix}")  # revoking twice changes nothing
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


@pytest.mark.parametrize(
    ("prefix", "status"),
    [("0000000g", 422), ("abc", 422), ("00000000", 404)],
)
def test_a_bad_or_unknown_prefix_is_refused(org: Org, prefix: str, status: int) -> None:
    answer = org.call("delete", f"/v1/api-keys/{prefix}")
    assert answer.status_code == status, answer.text
    assert set(answer.json()) >= {"error", "message"}


def test_another_organizations_key_cannot_be_revoked(org: Org) -> None:
    other = make_org(org.runtime, "Outra")
    prefix = other.api_key.split("_")[1]
    assert org.call("delete", f"/v1/api-keys/{prefix}").status_code == 404
    assert org.call("get", "/v1/bots", key=other.api_key).status_code == 200
