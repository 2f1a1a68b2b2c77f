"""The production topology as separate processes, and a supervisor for them.

The fake platform, the API, schedulers and Celery workers each run as `python -m ...` in a
session of their own (so a SIGKILL reaches a worker's pool children too), logging to a file.
The bench kills and restarts them as a supervisor would; a process that exits without being
killed is recorded as a crash (and restarted too, so that the run can still finish).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.chaos_kit.services import wait_for

CLI = ["-m", "reengage.entrypoints.cli"]
ROOT = Path(__file__).resolve().parents[2]  # `python -m bench.chaos_kit.platform` runs from here


@dataclass
class Proc:
    name: str
    argv: list[str]
    ready: Callable[[Path], bool]
    popen: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    starts: int = 0


@dataclass(frozen=True)
class Kill:
    """A SIGKILL: when (wall clock), and the process' TCP ports towards the platform then."""

    name: str
    at: float
    ports: frozenset[int]


@dataclass(frozen=True)
class Crash:
    name: str
    at: float
    returncode: int


@dataclass
class Topology:
    env: dict[str, str]
    logs: Path
    platform_port: int
    api_port: int
    procs: dict[str, Proc] = field(default_factory=dict)
    kills: list[Kill] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def platform_url(self) -> str:
        return f"http://127.0.0.1:{self.platform_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, schedulers: int = 2, workers: int = 2) -> None:
        """Every process at once, then wait until each is ready."""
        self.logs.mkdir(parents=True, exist_ok=True)
        platform = ["-m", "bench.chaos_kit.platform", "--port", str(self.platform_port)]
        self._add("platform", platform, _http_ready(f"{self.platform_url}/_control/sent"))
        self._add("api", [*CLI, "serve", "--port", str(self.api_port)], _http_ready(self.api_url))
        for i in range(1, schedulers + 1):
            self._add(f"scheduler-{i}", [*CLI, "scheduler"], _log_has("scheduler.started"))
        worker = [*CLI, "worker", "--queues", "timers,recovery", "--concurrency", "2"]
        for i in range(1, workers + 1):
            self._add(f"worker-{i}", worker, _log_has(" ready."))
        for proc in self.procs.values():
            self._spawn(proc)
        for proc in self.procs.values():
            self.wait_ready(proc.name)

    def names(self, prefix: str) -> list[str]:
        return [name for name in self.procs if name.startswith(prefix)]

    def ready(self, prefix: str, timeout: float = 60.0) -> list[str]:
        """The processes of a kind that are up and serving (waits for one if none is)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                up = [name for name in self.names(prefix) if self._is_ready(self.procs[name])]
            if up or time.monotonic() > deadline:
                return up
            time.sleep(0.1)

    @staticmethod
    def _is_ready(proc: Proc) -> bool:
        try:
            return proc.log is not None and proc.ready(proc.log)
        except (OSError, httpx.HTTPError):
            return False

    def _add(self, name: str, argv: list[str], ready: Callable[[Path], bool]) -> None:
        self.procs[name] = Proc(name, argv, ready)

    def _spawn(self, proc: Proc) -> None:
        proc.log = self.logs / f"{proc.name}.{proc.starts}.log"
        with proc.log.open("wb") as out:
            proc.popen = subprocess.Popen(
                [sys.executable, *proc.argv],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.starts += 1

    def wait_ready(self, name: str, timeout: float = 90.0) -> None:
        proc = self.procs[name]
        assert proc.log is not None
        log = proc.log
        wait_for(lambda: proc.ready(log), f"{name} ({log})", timeout)

    def kill(self, name: str, *, restart: bool = True) -> Kill:
        """SIGKILL the process and its children; record its connections to the platform."""
        with self._lock:
            proc = self.procs[name]
            assert proc.popen is not None
            ports = ports_towards(proc.popen.pid, self.platform_port)
            kill = Kill(name, time.time(), ports)
            _killpg(proc.popen)
            self.kills.append(kill)
            if restart:
                self._spawn(proc)
            return kill

    def supervise(self) -> None:
        """Restart what exited by itself, and record it as a crash."""
        with self._lock:
            for proc in self.procs.values():
                if proc.popen is not None and proc.popen.poll() is not None:
                    self.crashes.append(Crash(proc.name, time.time(), proc.popen.returncode))
                    self._spawn(proc)

    def stop(self) -> None:
        with self._lock:
            for proc in self.procs.values():
                if proc.popen is not None and proc.popen.poll() is None:
                    os.killpg(proc.popen.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            for proc in self.procs.values():
                if proc.popen is None:
                    continue
                try:
                    proc.popen.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _killpg(proc.popen)

    def log_since(self, name: str, offset: int) -> str:
        proc = self.procs[name]
        assert proc.log is not None
        with proc.log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_size(self, name: str) -> int:
        proc = self.procs[name]
        assert proc.log is not None
        return proc.log.stat().st_size


def _killpg(popen: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()


def _http_ready(url: str) -> Callable[[Path], bool]:
    return lambda _log: httpx.get(url, timeout=1).status_code < 500


def _log_has(marker: str) -> Callable[[Path], bool]:
    return lambda log: marker in log.read_text(errors="replace")


def _group(pgid: int) -> list[int]:
    """The processes of a process group (a worker and its pool children)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def ports_towards(pgid: int, remote_port: int) -> frozenset[int]:
    """Local ports of the group's TCP connections to 127.0.0.1:`remote_port` (from /proc)."""
    inodes = set()
    for pid in _group(pgid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], int(fields[9])
        if inode in inodes and int(remote.split(":")[1], 16) == remote_port:
            ports.add(int(local.split(":")[1], 16))
    return frozenset(ports)
