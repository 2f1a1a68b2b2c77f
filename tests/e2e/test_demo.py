"""The README's run command brings up the demo, and timeouts play out visibly."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
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
            "100",
            "--duration",
            "24",
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
    # The same 40 simulated minutes as the README's demo shows, at 100 times real speed: a
    # reminder is due 2 simulated minutes after each question, 1.2 real seconds here, and
    # bruno answers each question a minute after it, so a reply handled a moment late on a
    # loaded machine does not look like a silence (at 300 times the margin was 0.4 s, and a
    # loaded run once reminded bruno; so did his second answer while it came at the very
    # minute its reminder fell due). Ana's conversation closes
    # (5 minutes) before her silence reaches the inactivity threshold (10); a close handled
    # late finds the detection due too (logged once, just before the close).
    decided = [x for x in ana if "**" in x and "ana: inactivity_detected" not in x]
    assert decided == [
        next(x for x in ana if "ana: reminder_sent" in x),
        next(x for x in ana if "ana: closed_by_timeout" in x),
    ]
    assert sum("ana: inactivity_detected" in x for x in ana) <= 1
    assert any("carla: closed_by_timeout" in line for line in lines)
    assert any(
        "bot -> bruno: Obrigado! Um consultor vai escrever para bruno@exemplo.com." in line
        for line in lines
    )
    assert not any(
        "bruno: reminder_sent" in line or "bruno: closed_by_timeout" in line for line in lines
    )


def test_demo_prints_a_console_login_that_works(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "reengage.entrypoints.cli", "demo", "--speed", "60"]
    proc = subprocess.Popen(
        [*command, "--duration", "60", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = ""
        for _ in range(20):
            line = proc.stdout.readline()
            if "console:" in line:
                break
        # "  console:  http://127.0.0.1:PORT/console/  login: EMAIL / PASSWORD"
        results = proc.stdout.readline().split("results:", 1)[1].strip()
        url, rest = line.split("console:", 1)[1].split("login:")
        email, password = (part.strip() for part in rest.split(" / "))
        base = url.strip()
        with httpx.Client(base_url=base, follow_redirects=False) as client:
            for _ in range(100):
                try:
                    page = client.get("login")
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token is not None
            form = {"email": email, "password": password, "csrf": token.group(1)}
            answer = client.post("login", data=form)
            assert answer.status_code == 303, answer.text
            overview = client.get("")
            assert overview.status_code == 200
            assert "Demo bot" in overview.text
            # The seeded recovery campaign: its first sends show within a minute at x60.
            sent = None
            for _ in range(120):
                page = client.get(results)
                assert page.status_code == 200
                sent = re.search(r'data-bar="sent" data-value="(\d+)"', page.text)
                if sent is not None and int(sent.group(1)) > 0:
                    break
                time.sleep(0.5)
            assert sent is not None
            assert int(sent.group(1)) > 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
