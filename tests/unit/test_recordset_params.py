"""The JSON document of a `recordset` statement holds each row's named columns, whatever
else a row carries."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime

import orjson
import pytest

from reengage.adapters.db.sets import recordset_params

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_rows_hold_only_the_named_columns() -> None:
    rows = [
        {"id": 1, "at": AT},  # exactly the names
        {"at": None, "id": 2, "extra": object()},  # more: copied down to the names
        OrderedDict(id=3, at=AT),  # not a plain dict: copied
    ]
    document = orjson.loads(recordset_params(("id", "at"), rows)["rows"])
    assert document == [
        {"id": 1, "at": "2026-03-02T09:00:00+00:00"},
        {"id": 2, "at": None},
        {"id": 3, "at": "2026-03-02T09:00:00+00:00"},
    ]


def test_a_row_missing_a_name_is_refused() -> None:
    with pytest.raises(KeyError):
        recordset_params(("id", "at"), [{"id": 1}])
