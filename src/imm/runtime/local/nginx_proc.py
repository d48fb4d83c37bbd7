"""What /proc says about nginx processes: workers of a master, their state, stale ones.

nginx names its processes through their command line ("nginx: worker process", "nginx:
worker process is shutting down" after a reload), which is how the ingress tells the
workers of the current configuration from old ones still finishing their connections.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    pgid: int
    state: str
    title: str

    @property
    def shutting_down(self) -> bool:
        return "shutting down" in self.title

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")


def read(pid: int) -> Proc | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    title = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return Proc(pid, int(fields[1]), int(fields[2]), fields[0], title)


def is_alive(pid: int) -> bool:
    proc = read(pid)
    return proc is not None and proc.alive


def processes() -> list[Proc]:
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            proc = read(int(entry.name))
            if proc is not None and proc.alive:
                found.append(proc)
    return found


def workers(master: int) -> list[Proc]:
    """Live worker processes of ``master`` (old and current)."""
    return [p for p in processes() if p.ppid == master and p.title.startswith("nginx:")]


def holds_file(pid: int, path: Path) -> bool:
    try:
        fds = list((PROC / str(pid) / "fd").iterdir())
    except OSError:
        return False
    target = str(path)
    for fd in fds:
        try:
            if os.readlink(fd) == target:
                return True
        except OSError:
            continue
    return False


def stale(pid_file: Path, conf: Path, error_log: Path) -> list[Proc]:
    """nginx processes of an earlier run of this ingress: the master named by the pid file
    (if its command line names our configuration) and any worker still writing our error
    log (orphaned when its master was killed)."""
    found: dict[int, Proc] = {}
    try:
        master = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        master = 0
    for proc in processes():
        if not proc.title.startswith("nginx:") or proc.pid == os.getpid():
            continue
        ours_by_pid = proc.pid == master and str(conf) in proc.title
        if ours_by_pid or holds_file(proc.pid, error_log):
            found[proc.pid] = proc
    return list(found.values())
