"""One replica: a model-server process on its own loopback port, and its health.

Replicas die with the platform: each is started with a parent-death signal, and its pid is
recorded so that a platform restarted after a crash finds and stops any survivor before it
starts replicas anew (no orphaned or duplicate processes).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imm.runtime.local import cgroups
from imm.runtime.local.lifetime import die_with_parent
from imm.runtime.serving_args import model_server_argv

log = logging.getLogger("imm.runtime.replica")

LOG_TAIL = 2000
STOP_GRACE = 25.0  # seconds after SIGTERM before SIGKILL: above the server's grace period


class State(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"  # out of the ingress, stopping once nginx let go of it
    STOPPING = "stopping"  # SIGTERM sent, finishing calls in flight
    DEAD = "dead"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ReplicaCommand:
    """How to start one model server for an endpoint's current template."""

    model_name: str
    model_version: int
    base_path: str  # folder or s3://bucket/prefix holding <version>/ folders
    cache_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    threads: int = 1

    def argv(self, port: int) -> list[str]:
        return model_server_argv(
            sys.executable,
            model_name=self.model_name,
            model_version=self.model_version,
            base_path=self.base_path,
            host="127.0.0.1",
            port=port,
            cache_dir=str(self.cache_dir),
            threads=self.threads,
        )


class Replica:
    def __init__(
        self,
        template: str,
        command: ReplicaCommand,
        log_dir: Path,
        cgroup_procs: list[Path],
        on_cleanup: Callable[[], None] = lambda: None,
    ) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.template = template
        self.port = free_port()
        self.log_path = log_dir / f"replica-{self.id}.log"
        self.state = State.STARTING
        self.routed = False  # in the configuration nginx runs
        self.drain_started: float | None = None  # when it left the configuration nginx runs
        self.started = time.monotonic()
        self.stop_deadline = 0.0
        self._on_cleanup = on_cleanup
        log_dir.mkdir(parents=True, exist_ok=True)
        procs = cgroup_procs

        def before_exec() -> None:
            die_with_parent()
            cgroups.join(procs)

        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                command.argv(self.port),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **command.env, "IMM_REPLICA_ID": self.id},
                preexec_fn=before_exec,
                start_new_session=True,
            )
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self._health = health_pb2_grpc.HealthStub(self._channel)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_ready(self, timeout: float = 0.5) -> bool:
        """The model server reports SERVING only once its model is loaded and warmed up."""
        try:
            answer = self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING

    def terminate(self) -> None:
        """SIGTERM: the server stops taking calls and finishes those in flight."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        self.state = State.STOPPING
        self.stop_deadline = time.monotonic() + STOP_GRACE

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()

    def reap(self) -> None:
        """Once the process is gone: free its channel and cgroups."""
        self.proc.poll()
        self._channel.close()
        self.state = State.DEAD
        self._on_cleanup()

    def exit_message(self) -> str:
        """What the model server said last: the reason a start failed, for the endpoint view."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - LOG_TAIL))
                tail = f.read().decode(errors="replace").strip().splitlines()
        except OSError:
            tail = []
        code = self.proc.returncode
        last = next((line for line in reversed(tail) if line.strip()), "")
        return f"replica exited with code {code}: {last}"[:LOG_TAIL]


def stop_survivors(pid_file: Path, data_dir: Path) -> None:
    """Stops model servers a crashed earlier run of this platform left behind."""
    if not pid_file.exists():
        return
    stopped = 0
    for line in pid_file.read_text().split():
        if not line.isdigit():
            continue
        pid = int(line)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"imm.serving" in cmdline and any(str(data_dir).encode() in a for a in cmdline):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                os.kill(pid, signal.SIGKILL)
            stopped += 1
    pid_file.unlink(missing_ok=True)
    if stopped:
        log.warning("stopped %d replica(s) left over from an earlier run", stopped)
