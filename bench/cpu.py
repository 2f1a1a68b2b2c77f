"""CPU time of processes, threads and the local stores, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def stat_cpu_s(stat_path: str, reaped: bool = False) -> float:
    """User + system CPU seconds from a /proc `stat` file (0 when the task is gone); with
    `reaped`, also those of its children that ended and were waited for."""
    try:
        stat = Path(stat_path).read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def process_cpu_s(pid: int) -> float:
    return stat_cpu_s(f"/proc/{pid}/stat")


def thread_cpu_s(native_id: int) -> float:
    """One thread of this process."""
    return stat_cpu_s(f"/proc/self/task/{native_id}/stat")


def store_cpu_s() -> float:
    """CPU of every PostgreSQL and Redis process on the machine, so far, with the children
    they reaped: a database connection's process that ended between two readings still
    counts (in its parent's), instead of taking its CPU out of the total."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith(("postgres", "redis-server")):
                total += stat_cpu_s(f"/proc/{entry}/stat", reaped=True)
    return total
