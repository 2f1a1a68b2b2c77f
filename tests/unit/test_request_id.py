"""Which `X-Request-ID` a request keeps, and what replaces one that is not sane."""

from __future__ import annotations

import pytest

from reengage.entrypoints.api.request_id import request_id_of


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"type": "http", "headers": [(b"host", b"x"), *headers]}


@pytest.mark.parametrize("given", [b"abc", b"req-42.a:b_C", b"x" * 128])
def test_a_sane_request_id_is_kept(given: bytes) -> None:
    assert request_id_of(_scope((b"x-request-id", given))) == given.decode()


@pytest.mark.parametrize("given", [b"", b"x" * 129, b"a b", b"a\nb", b"{}", "é".encode()])
def test_anything_else_is_replaced_by_a_new_id(given: bytes) -> None:
    made = request_id_of(_scope((b"x-request-id", given)))
    assert made != given.decode(errors="replace")
    assert len(made) == 32
    assert made != request_id_of(_scope((b"x-request-id", given)))


def test_a_request_without_one_gets_one() -> None:
    assert len(request_id_of(_scope())) == 32
