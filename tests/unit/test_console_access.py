"""Console roles as a table, and the console's texts: every key a template or a page uses
exists, in both languages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import reengage.entrypoints.console as console
from reengage.domain.console_access import Action, Role, allows, parse_role
from reengage.entrypoints.console.texts import LANGUAGES, keys, text

FOLDER = Path(console.__file__).parent


@pytest.mark.parametrize(
    ("role", "action", "allowed"),
    [
        (Role.OWNER, Action.VIEW, True),
        (Role.OWNER, Action.EDIT, True),
        (Role.OWNER, Action.ADMINISTER, True),
        (Role.EDITOR, Action.VIEW, True),
        (Role.EDITOR, Action.EDIT, True),
        (Role.EDITOR, Action.ADMINISTER, False),
        (Role.VIEWER, Action.VIEW, True),
        (Role.VIEWER, Action.EDIT, False),
        (Role.VIEWER, Action.ADMINISTER, False),
    ],
)
def test_what_each_role_allows(role: Role, action: Action, allowed: bool) -> None:
    assert allows(role, action) is allowed


@pytest.mark.parametrize(
    ("value", "role"),
    [("owner", Role.OWNER), ("viewer", Role.VIEWER), ("Owner", None), ("", None), ("root", None)],
)
def test_parse_role(value: str, role: Role | None) -> None:
    assert parse_role(value) == role


def used_keys() -> set[str]:
    found: set[str] = set()
    for path in [*FOLDER.glob("templates/*.html"), *FOLDER.glob("*.py")]:
        source = path.read_text()
        found |= set(re.findall(r"""\bt\(\s*["']([a-z_]+)["']""", source))
        found |= set(re.findall(r"""Refused\(\s*\d+,\s*["']([a-z_]+)["']""", source))
        found |= set(re.findall(r"""["'](err_[a-z_]+)["']""", source))
    return {k for k in found if not k.endswith("_")}  # `"role_" ~ role`: checked below


def test_every_text_a_page_uses_exists() -> None:
    used = used_keys()
    assert {"overview", "err_csrf", "err_forbidden", "err_token"} <= used  # the scan works
    assert used - keys() == set()
    for role in Role:
        assert f"role_{role.value}" in keys()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_exists_in_both_languages(language: str) -> None:
    for key in keys():
        assert text(
            language,
            key,
            email="e",
            role="r",
            org="o",
            at="a",
            late="l",
            url="u",
            username="u",
            detail="d",
            field="f",
            name="n",
            # campaigns and results
            n=1,
            version=1,
            now="n",
            utc="u",
            local="l",
            zone="z",
            started=1,
            returned=1,
            converted=1,
            difference="+1",
            low="0",
            high="2",
            treatment="t",
            holdout="h",
            failed=0,
            skipped=0,
        ).strip()
    assert text("pt-BR", "overview") != text("en", "overview")
    assert text("xx", "overview") == text("pt-BR", "overview")
