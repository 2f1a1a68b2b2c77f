"""A private PostgreSQL cluster and a private Redis, on their own ports and in a temporary
directory, so that restarting them (a fault) never touches the machine's shared services.

PostgreSQL refuses to run as root: as root, `initdb` and `pg_ctl` run as the `postgres` user
(`runuser`), in a directory it owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis

# The secret key of every process a bench starts (outside SQLite, reengage refuses to start
# with the default one); codes from before the check ignore it the same way.
BENCH_SECRET_KEY = "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    """A TCP port nothing listens on now (for runs next to others on the same machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up within {timeout} s")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} not found (PostgreSQL server binaries)")
    return path


class PrivatePostgres:
    """`initdb` into a temporary directory, serve on `port` (127.0.0.1 only)."""

    def __init__(self, port: int = 55432) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="reengage-chaos-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run(
            [*prefix, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def init(self) -> None:
        if not port_free(self.port):
            raise RuntimeError(f"port {self.port} is taken: is another chaos run going on?")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-N")
        self.start()

    def start(self) -> None:
        # No fsync: the machine does not crash here, only PostgreSQL does, and the kernel keeps
        # what was written. Commits stay synchronous: an acknowledged commit must survive an
        # immediate stop, or the engine would be blamed for the cluster forgetting it.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=300"
        )
        log = str(self.root / "postgres.log")
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash for the clients: every connection drops at once."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """`redis-server` on `port` as a child process, without persistence: a restart is empty."""

    def __init__(self, port: int = 16379) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        self.root = Path(tempfile.mkdtemp(prefix="reengage-chaos-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not port_free(self.port):
            raise RuntimeError(f"port {self.port} is taken: is another chaos run going on?")
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(self.root)]
        with (self.root / "redis.log").open("ab") as log:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        try:
            wait_for(client.ping, f"redis on {self.port}")
        finally:
            client.close()

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def destroy(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
