"""The README's run command brings up the demo, and a timer fires visibly."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_shows_quiet_users_being_detected(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "reengage.entrypoints.cli",
            "demo",
            "--speed",
            "300",
            "--duration",
            "12",
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
    for user in ("ana", "bruno", "carla"):
        assert f"timer fired: {user} has been quiet since" in out, out
    # bruno kept chatting: his timer fired once, after his last message, not before.
    bruno = [line for line in out.splitlines() if "bruno" in line]
    assert "timer fired" in bruno[-1]
    assert all("timer fired" not in line for line in bruno[:-1])
