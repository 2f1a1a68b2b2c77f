#!/usr/bin/env python3
"""Add the messages marked `N_("...")` in the code to the catalogue (pt-BR msgstr empty, to
be translated), and list those the code no longer uses.

    .venv/bin/python scripts/i18n_extract.py          # update the catalogue
    .venv/bin/python scripts/i18n_extract.py --check  # exit 1 when something is missing
    .venv/bin/python scripts/i18n_extract.py --prune  # also delete what the code no longer uses

It extracts as `pybabel extract -F babel.cfg -k N_` does; unlike `pybabel update` it leaves
the texts looked up by key (msgctxt "console:…", "manager_bot:…") alone: they live in the
catalogue only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "src/reengage/i18n/locale/pt_BR/LC_MESSAGES/messages.po"
KEYWORDS = {"N_": None}


def extracted() -> dict[str, list[tuple[str, int]]]:
    """Each msgid marked in the code, and where."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[str, list[tuple[str, int]]] = {}
    for filename, lineno, message, _, _ in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        if isinstance(message, str):
            found.setdefault(message, []).append((filename, lineno))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing, exit 1 if stale")
    parser.add_argument("--prune", action="store_true", help="delete those no longer used")
    args = parser.parse_args(argv)
    with CATALOGUE.open("rb") as file:
        catalog = read_po(file, locale="pt_BR")
    found = extracted()
    plain = {m.id for m in catalog if m.id and not m.context}
    missing = sorted(set(found) - plain)
    unused = sorted(str(i) for i in plain - set(found))
    for msgid in missing:
        print(f"new: {msgid!r} ({found[msgid][0][0]}:{found[msgid][0][1]})")
        flags = ["python-brace-format"] if "{" in msgid else []
        catalog.add(msgid, "", locations=found[msgid], flags=flags)
    for msgid in unused:
        print(f"no longer in the code: {msgid!r}")
        if args.prune:
            catalog.delete(msgid)
    if args.check:
        return 1 if missing or unused else 0
    if missing or (unused and args.prune):
        with CATALOGUE.open("wb") as file:
            write_po(file, catalog, width=100, include_lineno=False)
    if missing:
        print(f"{len(missing)} new messages in {CATALOGUE.name}: translate their msgstr")
    if unused and not args.prune:
        print("--prune deletes the messages no longer in the code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
