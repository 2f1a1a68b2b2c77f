#!/usr/bin/env python3
"""Move a module's `{"key": ("pt-BR text", "English text")}` dict into the message catalogue.

    .venv/bin/python scripts/i18n_import_tuples.py src/reengage/entrypoints/console/texts.py _TEXTS
    .venv/bin/python scripts/i18n_import_tuples.py <module.py> <DICT> --scope console --rewrite

Each entry becomes `msgctxt "<scope>:<key>"`, `msgid "<English>"`, `msgstr "<pt-BR>"` at the
end of `src/reengage/i18n/locale/pt_BR/LC_MESSAGES/messages.po`. The scope defaults to the
module's folder (`console`, `manager_bot`). An entry already in the catalogue with the same
texts is skipped; with other texts it is reported as a conflict and left alone (exit 1).
The script prints the entries to delete from the dict; `--rewrite` deletes them itself.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "src/reengage/i18n/locale/pt_BR/LC_MESSAGES/messages.po"


def _module_file(module: str) -> Path:
    path = Path(module)
    if path.suffix == ".py":
        return path if path.is_absolute() else Path.cwd() / path
    return ROOT / "src" / (module.replace(".", "/") + ".py")  # a dotted module name


def _dict_node(tree: ast.Module, name: str) -> ast.Dict:
    for node in tree.body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else []
        targets += node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            value = node.value
            if isinstance(value, ast.Dict):
                return value
    raise SystemExit(f"no dict literal named {name}")


def _entries(node: ast.Dict) -> list[tuple[str, str, str, int, int]]:
    """(key, pt, en, first line, last line) of each entry."""
    out = []
    for key, value in zip(node.keys, node.values, strict=True):
        if key is None:
            raise SystemExit("a `**` entry cannot be converted")
        pt, en = ast.literal_eval(value)
        out.append((ast.literal_eval(key), pt, en, key.lineno, value.end_lineno or key.lineno))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("module", help="a .py file or a dotted module name")
    parser.add_argument("dict_name", help="the name of the dict of (pt-BR, English) tuples")
    parser.add_argument("--scope", help="the context prefix (default: the module's folder)")
    parser.add_argument("--rewrite", action="store_true", help="delete the converted entries")
    parser.add_argument("--catalogue", type=Path, default=CATALOGUE)
    args = parser.parse_args(argv)
    source = _module_file(args.module)
    scope = args.scope or source.parent.name
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    entries = _entries(_dict_node(ast.parse("".join(lines)), args.dict_name))
    with args.catalogue.open("rb") as file:
        catalog = read_po(file, locale="pt_BR")
    converted, conflicts = [], []
    for key, pt, en, first, last in entries:
        context = f"{scope}:{key}"
        present = catalog.get(en, context=context) or next(
            (m for m in catalog if m.context == context), None
        )
        if present is not None and (present.id, present.string) != (en, pt):
            conflicts.append(key)
            print(f"conflict: {context} is already {present.id!r} / {present.string!r}")
            continue
        if present is None:
            catalog.add(en, pt, context=context, flags=["python-brace-format"] if "{" in en else [])
        converted.append((key, first, last))
    with args.catalogue.open("wb") as file:
        write_po(file, catalog, width=100)
    print(f"{len(converted)} entries of {args.dict_name} are in {args.catalogue.name}; delete:")
    for key, first, last in converted:
        print(f"  {source.name}:{first}-{last}  {key!r}")
    if args.rewrite:
        doomed = {n for _, first, last in converted for n in range(first - 1, last)}
        source.write_text("".join(x for n, x in enumerate(lines) if n not in doomed), "utf-8")
        print(f"deleted from {source}")
    return 1 if conflicts else 0


if __name__ == "__main__":
    sys.exit(main())
