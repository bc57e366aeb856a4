"""Where the machine's CPU went during a benchmark run, from /proc (Linux only).

`Snapshot.take()` before and after a run; `cpu_by_group(before, after, groups)` gives CPU
seconds per group of processes (the benchmark's own: its worker, the emulator, PostgreSQL,
Redis, the load generator...) and `other`: everything else that ran meanwhile, which is how a
result says whether other load disturbed it. Processes that start and exit inside the window
(a PostgreSQL backend per connection) are counted through their parent's reaped-children
time (the postmaster's cutime), so a group names parents, not every short-lived child.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    own: float  # utime + stime, seconds
    reaped: float  # cutime + cstime: children that exited and were waited for, seconds


@dataclass(frozen=True)
class Snapshot:
    busy: float  # machine CPU seconds not idle, all cores
    procs: dict[int, Proc]

    @classmethod
    def take(cls) -> Snapshot:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        # user, nice, system, irq, softirq; not idle, iowait, steal (guest is inside user)
        busy = (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / TICK
        procs = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    raw = f.read()
            except OSError:
                continue
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            rest = raw[raw.rindex(")") + 2 :].split()
            procs[int(name)] = Proc(
                pid=int(name),
                ppid=int(rest[1]),
                comm=comm,
                own=(int(rest[11]) + int(rest[12])) / TICK,
                reaped=(int(rest[13]) + int(rest[14])) / TICK,
            )
        return cls(busy=busy, procs=procs)


def descendants(snapshot: Snapshot, root: int) -> set[int]:
    """root and every live process below it."""
    children: dict[int, list[int]] = {}
    for proc in snapshot.procs.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_by_group(
    before: Snapshot, after: Snapshot, groups: dict[str, Callable[[Proc], bool]]
) -> dict[str, float]:
    """CPU seconds per group between the snapshots, plus 'other' and 'busy' (the total).

    A process counts for the first group whose predicate accepts it; a process of a group
    counts with its own time and the time of its children reaped meanwhile. Processes that
    belong to no group are 'other' (their reaped children too, approximately: a child reaped
    by init or by a group process is counted once, where its parent is).
    """
    totals = {name: 0.0 for name in groups}
    ours = 0.0
    for pid, proc in after.procs.items():
        old = before.procs.get(pid)
        if old is not None and old.comm != proc.comm and old.ppid != proc.ppid:
            old = None  # pid reused
        spent = proc.own + proc.reaped - ((old.own + old.reaped) if old else 0.0)
        for name, accepts in groups.items():
            if accepts(proc):
                totals[name] += max(spent, 0.0)
                ours += max(spent, 0.0)
                break
    busy = after.busy - before.busy
    totals["other"] = max(busy - ours, 0.0)
    totals["busy"] = busy
    return totals


def by_pids(pids: set[int]) -> Callable[[Proc], bool]:
    return lambda proc: proc.pid in pids


def by_comm(*prefixes: str) -> Callable[[Proc], bool]:
    return lambda proc: proc.comm.startswith(prefixes)


# A client backend's title: "postgres: [cluster: ]user database host(port)|[local] activity".
_CLIENT_BACKEND = re.compile(r"^\S+ (?P<database>\S+) (?:\[local\]|\S+\(\d+\))(?: |$)")


def postgres_of(database: str) -> Callable[[Proc], bool]:
    """PostgreSQL's work for ``database``: its client backends, and the server's own background
    processes (WAL writer, checkpointer, background writer...), which every database shares and
    which count here in full. Not the backends of other databases (on a shared machine, other
    people's test runs), nor the postmaster, whose reaped children are connections that came
    and went meanwhile: a benchmark's servers keep theirs open."""

    def accepts(proc: Proc) -> bool:
        if proc.comm != "postgres":
            return False
        try:
            with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            return False
        if not title.startswith("postgres: "):
            return False  # the postmaster (its command line, not a title)
        client = _CLIENT_BACKEND.match(title.rsplit(": ", 1)[-1])
        return client is None or client["database"] == database

    return accepts
