"""Every query on a tenant's table, where tenants reach it (the API, the manager bot, the
services they call), goes through the one scoping helper (`services.tenancy.scoped` /
`owned`), so it cannot forget the organization. A query that is safe for another reason (it
finds the organization: an API key, an invite; or it runs on rows the engine already holds)
says why on its line: `# unscoped: <why>`."""

from __future__ import annotations

import ast
from pathlib import Path

import reengage
from reengage.adapters.db.models import Base

SRC = Path(reengage.__file__).parent
TENANT_FACING = [
    SRC / "entrypoints" / "api",
    SRC / "entrypoints" / "console",
    SRC / "entrypoints" / "manager_bot",
    SRC / "services",
]
TENANT_MODELS = {
    mapper.class_.__name__
    for mapper in Base.registry.mappers
    if "org_id" in mapper.class_.__table__.columns
}
QUERY_BUILDERS = {"select", "update", "delete", "insert"}
SESSION_LOOKUPS = {"get", "get_one"}


def models_in(node: ast.AST) -> set[str]:
    """The tenant models a query builder's arguments name (`Bot`, `Bot.id`)."""
    found = set()
    for arg in getattr(node, "args", []):
        for sub in ast.walk(arg):
            if isinstance(sub, ast.Name) and sub.id in TENANT_MODELS:
                found.add(sub.id)
    return found


def violations(path: Path) -> list[str]:
    """`<line> [models]` for each query on a tenant model not through the helper."""
    source = path.read_text()
    lines = source.splitlines()
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in QUERY_BUILDERS:
            models = models_in(node)
        elif isinstance(func, ast.Attribute) and func.attr in SESSION_LOOKUPS:
            models = models_in(node) & _first_arg(node)
        else:
            continue
        context = " ".join(lines[max(0, node.lineno - 2) : node.end_lineno or node.lineno])
        if models and "# unscoped:" not in context:
            out.append((node.lineno, f"{node.lineno} {sorted(models)}"))
    return [text for _, text in sorted(out)]


def _first_arg(node: ast.Call) -> set[str]:
    first = node.args[0] if node.args else None
    return {first.id} if isinstance(first, ast.Name) else set()


def test_the_tenant_models_are_known() -> None:
    assert {"Bot", "Contact", "Conversation", "Delivery", "Episode", "Campaign"} <= TENANT_MODELS


def test_every_tenant_query_goes_through_the_scoping_helper() -> None:
    found = [
        f"{path.relative_to(SRC)}:{v}"
        for folder in TENANT_FACING
        for path in sorted(folder.rglob("*.py"))
        if path.name != "tenancy.py"
        for v in violations(path)
    ]
    assert found == []


def test_the_check_catches_an_unscoped_query(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "rows = session.scalars(select(Bot).where(Bot.id == bot_id))\n"
        "row = session.get(Delivery, delivery_id)\n"
        "ok = session.get(Delivery, delivery_id)  # unscoped: found by the engine's timer\n"
        "fine = session.scalars(scoped(Bot, org_id))\n"
    )
    assert violations(bad) == ["1 ['Bot']", "2 ['Delivery']"]
