"""Schemathesis over the app's own OpenAPI schema, in-process, against real rows: every
operation, valid and invalid input, no answer is a 5xx."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import schemathesis
from hypothesis import settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from reengage.runtime import Runtime
from tests.e2e.hostile import EXAMPLES, FUZZ, World, open_world

pytestmark = pytest.mark.slow  # Schemathesis over every operation


@pytest.fixture
def world(
    db_url: str, make_runtime: Callable[..., Runtime], telegram_url: str, whatsapp_url: str
) -> Iterator[World]:
    runtime = make_runtime(db_url, telegram_api_base=telegram_url, whatsapp_api_base=whatsapp_url)
    with open_world(runtime) as world:
        yield world


@pytest.fixture
def api_schema(world: World) -> schemathesis.BaseSchema:
    loaded = schemathesis.openapi.from_asgi("/openapi.json", world.client.app)
    # The request bodies' documented examples are not drawn here (a test with its own
    # strategies cannot take them): the fuzzing phase alone.
    loaded.config.phases.update(phases=["fuzzing"])
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.given(data=st.data())
@schema.parametrize()
@settings(FUZZ, max_examples=max(EXAMPLES * 2 // 5, 1))
def test_no_operation_answers_5xx(
    case: schemathesis.Case, data: st.DataObject, world: World
) -> None:
    # Mostly real ids and a real key, so that deep routes run their validation, not a 404.
    real = world.path_values(case.path)
    for name in list(case.path_parameters or {}):
        if name in real and data.draw(st.integers(0, 3), label=name) > 0:
            case.path_parameters[name] = real[name]
    if data.draw(st.integers(0, 7), label="api key") > 0:
        case.headers = {**(case.headers or {}), **world.headers}
    case.call_and_validate(checks=[not_a_server_error])
