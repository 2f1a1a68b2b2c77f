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
