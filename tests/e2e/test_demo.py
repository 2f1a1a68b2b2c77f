"""The README's run command brings up the demo, and timeouts play out visibly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow  # runs the demo command as a process


def test_demo_shows_reminders_and_closes(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reengage.entrypoints.cli",
            "demo",
            "--speed",
            "300",
            "--duration",
            "8",
            "--port",
            str(free_port()),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "API key:  rg_" in out
    lines = out.splitlines()
    ana = [line for line in lines if "ana" in line]
    assert [x for x in ana if "**" in x] == [
        next(x for x in ana if "ana: reminder_sent" in x),
        next(x for x in ana if "ana: closed_by_timeout" in x),
    ]
    assert any("carla: closed_by_timeout" in line for line in lines)
    assert any(
        "bot -> bruno: Obrigado! Um consultor vai escrever para bruno@exemplo.com." in line
        for line in lines
    )
    assert not any(
        "bruno: reminder_sent" in line or "bruno: closed_by_timeout" in line for line in lines
    )
