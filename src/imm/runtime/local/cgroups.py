"""CPU and memory limits for replica processes, through cgroups where they are writable.

cgroup v2 (one unified tree: ``cpu.max``, ``memory.max``) and cgroup v1 (separate ``cpu``
and ``memory`` hierarchies: ``cpu.cfs_quota_us``, ``memory.limit_in_bytes``) are both
handled. Where neither is writable (an unprivileged user, a locked-down container), limits
are only accounted and ``enforced`` says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

log = logging.getLogger("imm.runtime.cgroups")

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


@dataclass(frozen=True)
class Limits:
    cpu: Decimal | None = None  # cores
    memory: int | None = None  # bytes

    @property
    def empty(self) -> bool:
        return self.cpu is None and self.memory is None


class Cgroups:
    """Creates one group per replica under ``<controller>/imm/`` and removes it after."""

    def __init__(self, root: Path = ROOT, prefix: str = "imm") -> None:
        self.root = root
        self.prefix = prefix
        self.v2 = (root / "cgroup.controllers").exists()
        self.enforced = self._probe()

    def _base(self, controller: str) -> Path:
        return self.root / self.prefix if self.v2 else self.root / controller / self.prefix

    def _probe(self) -> bool:
        try:
            if self.v2:
                controllers = (self.root / "cgroup.controllers").read_text().split()
                if not {"cpu", "memory"} <= set(controllers):
                    return False
                base = self._base("")
                base.mkdir(exist_ok=True)
                # Children of the imm group may only use controllers it enables for them.
                (base / "cgroup.subtree_control").write_text("+cpu +memory")
                return True
            for controller in ("cpu", "memory"):
                self._base(controller).mkdir(exist_ok=True)
            return True
        except OSError as exc:
            log.info("cgroups not writable (%s): resource limits are accounted only", exc)
            return False

    def _dirs(self, name: str) -> list[Path]:
        if self.v2:
            return [self._base("") / name]
        return [self._base("cpu") / name, self._base("memory") / name]

    def create(self, name: str, limits: Limits) -> list[Path]:
        """The group's ``cgroup.procs`` files, to write the replica's pid into."""
        if not self.enforced or limits.empty:
            return []
        procs: list[Path] = []
        try:
            if self.v2:
                group = self._dirs(name)[0]
                group.mkdir(exist_ok=True)
                quota = "max" if limits.cpu is None else str(int(limits.cpu * PERIOD_US))
                (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
                (group / "memory.max").write_text(str(limits.memory or "max"))
                procs.append(group / "cgroup.procs")
            else:
                cpu, memory = self._dirs(name)
                cpu.mkdir(exist_ok=True)
                memory.mkdir(exist_ok=True)
                (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                quota = -1 if limits.cpu is None else int(limits.cpu * PERIOD_US)
                (cpu / "cpu.cfs_quota_us").write_text(str(quota))
                (memory / "memory.limit_in_bytes").write_text(str(limits.memory or -1))
                procs += [cpu / "cgroup.procs", memory / "cgroup.procs"]
        except OSError as exc:
            log.warning("cannot set cgroup limits for %s: %s", name, exc)
            self.remove(name)
            return []
        return procs

    def remove(self, name: str) -> None:
        """Only empty groups can be removed; a replica's group empties when it exits."""
        for group in self._dirs(name):
            with contextlib.suppress(OSError):
                group.rmdir()


def join(procs: list[Path]) -> None:
    """Runs in the replica's child process before exec: moves it into its groups, so the
    limits hold from the first instruction of the model server."""
    pid = str(os.getpid()).encode()
    for path in procs:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)
