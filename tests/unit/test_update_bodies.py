"""Webhook bodies are read by a strict fast parser, and what it refuses by Python's: the same
objects come out for every body Python's parser takes, and the rest is a BadUpdate."""

from __future__ import annotations

import json

import pytest

from reengage.adapters.channels.updates import BadUpdate, json_object

ACCEPTED = [
    b'{"update_id": 1, "message": {"text": "ol\\u00e1 \\ud83d\\ude42"}}',
    b'{"big": 123456789012345678901234567890}',  # past 64 bits
    b'{"lone": "\\ud800"}',  # a lone surrogate: refused later, by the field's own check
    b'{"n": NaN, "i": Infinity}',
    b'{"k": 1, "k": 2}',
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_a_body_reads_as_pythons_parser_reads_it(body: bytes) -> None:
    expected = json.loads(body)
    got = json_object(body)
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


@pytest.mark.parametrize(
    "body", [b"{not json", b"[1, 2]", b"", b'"text"', b"[" * 100_000 + b"]" * 100_000]
)
def test_what_no_parser_takes_as_an_object_is_a_bad_update(body: bytes) -> None:
    with pytest.raises(BadUpdate):
        json_object(body)
