"""A body over the limit is a 413 in the API's error shape, declared or chunked, and the
media upload has its own larger limit."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from reengage.entrypoints.api.app import create_app
from reengage.entrypoints.api.body_limit import LARGER_BODIES
from reengage.runtime import Runtime
from tests.factories import make_bot, make_org

LIMIT = 64 * 1024


@pytest.fixture
def small(db_url: str, make_runtime: Callable[..., Runtime]) -> Iterator[tuple[TestClient, str]]:
    runtime = make_runtime(db_url, max_body_bytes=LIMIT)
    org = make_org(runtime)
    make_bot(runtime, org.org_id)
    with TestClient(create_app(runtime)) as client:
        yield client, org.api_key


def _batch(size: int) -> bytes:
    events, i = [], 0
    while len(json.dumps({"events": events})) < size:
        events.append({"id": f"e-{i}", "type": "message.user", "bot_id": 1, "user_id": "u"})
        i += 1
    return json.dumps({"events": events}).encode()


def _is_413(answer: object) -> None:
    assert answer.status_code == 413  # type: ignore[attr-defined]
    assert answer.json() == {  # type: ignore[attr-defined]
        "error": "payload_too_large",
        "field": "body",
        # in the organization's language (pt-BR, the default)
        "message": f"o corpo da requisição tem mais de {LIMIT} bytes",
    }


def test_a_declared_body_over_the_limit_is_refused_unread(small: tuple[TestClient, str]) -> None:
    client, key = small
    body = _batch(LIMIT + 1)
    answer = client.post(
        "/v1/events",
        content=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    _is_413(answer)
    assert "x-request-id" in answer.headers


def test_a_chunked_body_over_the_limit_is_cut_at_the_limit(small: tuple[TestClient, str]) -> None:
    client, key = small
    body = _batch(LIMIT * 3)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for at in range(0, len(body), 4096):
            yield body[at : at + 4096]

    answer = client.post(
        "/v1/events",
        content=chunks(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    _is_413(answer)


def test_a_body_within_the_limit_goes_through(small: tuple[TestClient, str]) -> None:
    client, key = small
    answer = client.post(
        "/v1/events",
        content=_batch(LIMIT // 2),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text


def test_the_media_upload_has_its_own_limit(small: tuple[TestClient, str]) -> None:
    client, key = small
    assert LARGER_BODIES["/v1/media"] > 50 * 1024 * 1024
    answer = client.post(
        "/v1/media",
        files={"file": ("a.png", b"\x89PNG" + b"0" * (LIMIT * 2), "image/png")},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 201, answer.text


def test_the_consoles_media_block_upload_has_the_media_limit(small: tuple[TestClient, str]) -> None:
    client, _ = small
    body = {"file": ("a.png", b"\x89PNG" + b"0" * (LIMIT * 2), "image/png")}
    upload = client.post("/console/bots/1/campaign/steps/0/blocks", files=body)
    assert upload.status_code != 413  # past the limit, to the console (which asks for a login)
    other = client.post("/console/bots/1/campaign/steps/0/schedule", files=body)
    assert other.status_code == 413
