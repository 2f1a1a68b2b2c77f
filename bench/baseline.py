"""Another commit's code, to run side by side with this one."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checkout(ref: str, into: Path) -> Path:
    """`src/`, `migrations/` and `alembic.ini` of a commit, in a directory of their own."""
    tree = into / ref
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", ref, "src", "migrations", "alembic.ini"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree
