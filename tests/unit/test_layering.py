"""The domain core stays pure: no I/O library is imported under reengage/domain."""

from __future__ import annotations

import ast
from pathlib import Path

import reengage.domain

FORBIDDEN = {
    "sqlalchemy",
    "redis",
    "httpx",
    "celery",
    "kombu",
    "fastapi",
    "starlette",
    "aiogram",
    "alembic",
    "psycopg",
    "structlog",
    "prometheus_client",
    "uvicorn",
    "typer",
}
DOMAIN = Path(reengage.domain.__file__).parent


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
            if node.module.startswith("reengage.") and not node.module.startswith(
                "reengage.domain"
            ):
                roots.add("reengage-outside-domain")
    return roots


def test_domain_modules_exist() -> None:
    assert len(list(DOMAIN.glob("*.py"))) >= 3


def test_domain_imports_no_io_library() -> None:
    offenders = {
        str(path.relative_to(DOMAIN)): sorted(imported_roots(path) & FORBIDDEN)
        for path in DOMAIN.rglob("*.py")
        if imported_roots(path) & FORBIDDEN
    }
    assert offenders == {}


def test_domain_imports_nothing_outside_domain() -> None:
    offenders = [
        p.name for p in DOMAIN.rglob("*.py") if "reengage-outside-domain" in imported_roots(p)
    ]
    assert offenders == []


def test_the_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom sqlalchemy.orm import Session\n")
    assert imported_roots(bad) & FORBIDDEN == {"sqlalchemy"}


def test_only_tests_and_benches_use_the_fakes() -> None:
    """`reengage.testing` (fake platforms, time travel) is for tests, benches and
    playgrounds; the product never imports it."""
    src = DOMAIN.parent
    offenders = [
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if src / "testing" not in path.parents
        and any(
            name == "reengage.testing" or name.startswith("reengage.testing.")
            for name in imported_modules(path)
        )
    ]
    assert offenders == []


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_fakes_checker_sees_both_import_forms(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import reengage.testing.telegram\nfrom reengage.testing import time_travel\n")
    assert imported_modules(bad) == {"reengage.testing.telegram", "reengage.testing"}
