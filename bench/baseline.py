"""Another commit's code, to run side by side with this one."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checkout(ref: str, into: Path) -> Path:
    """`src/`, `alembic.ini` (and, in older commits, `migrations/`) of a commit, in a
    directory of their own."""
    tree = into / ref
    tree.mkdir(parents=True)
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", ref],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    # `migrations/` moved into the package (src/reengage/migrations) after 0.1.0.
    paths = [p for p in ("src", "migrations", "alembic.ini") if p in listed]
    archive = subprocess.run(
        ["git", "archive", ref, *paths],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree
