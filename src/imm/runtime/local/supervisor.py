"""The replica supervisor: keeps each endpoint's model-server processes at their desired
state, one small step per tick, and the ingress pointing at the ready ones.

Rules, as a Kubernetes Deployment with ``maxSurge: 1, maxUnavailable: 0`` would follow them:
- a replica joins the ingress only once it reports SERVING;
- a replica leaves the ingress before it is stopped, and is stopped (SIGTERM, calls in
  flight finish) only once nginx's old workers have let go of it;
- a rolling update starts one new replica, waits for it to be ready, retires one old one,
  and repeats, so capacity never drops below the desired count;
- a replica that dies is replaced, with exponential back-off while starts keep failing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from imm.runtime.base import EndpointObservation, EndpointSpec, EndpointStatus
from imm.runtime.local.cgroups import Cgroups, Limits
from imm.runtime.local.ingress import IngressError, Route
from imm.runtime.local.replica import Replica, ReplicaCommand, State

log = logging.getLogger("imm.runtime.supervisor")

TICK = 0.2
START_TIMEOUT = 180.0  # a model server not ready by then is killed and counts as a failure
FAILED_AFTER = 3  # consecutive failed starts before the endpoint shows `failed`
BACKOFF_MAX = 30.0
DRAIN_TIMEOUT = 35.0  # just above nginx's worker_shutdown_timeout
INGRESS_RETRY = 5.0  # seconds before trying again a configuration nginx refused


class IngressLike(Protocol):
    rejected: dict[tuple[str, str], str]  # routes left out of the configuration, and why

    def apply(self, routes: Sequence[Route]) -> bool: ...

    def wait_drained(self, timeout: float) -> bool: ...


def template_of(spec: EndpointSpec) -> str:
    """What the replicas' processes depend on: a change of it rolls them."""
    key = json.dumps([spec.model_name, spec.model_version, spec.resources], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass
class EndpointState:
    spec: EndpointSpec
    template: str
    command: ReplicaCommand
    limits: Limits
    replicas: list[Replica] = field(default_factory=list)
    failures: int = 0  # consecutive starts that never became ready
    lost: bool = False  # a replica died since the endpoint last had all it wanted
    next_start: float = 0.0
    last_error: str | None = None

    def active(self, current: bool) -> list[Replica]:
        return [
            r
            for r in self.replicas
            if r.state in (State.STARTING, State.READY) and (r.template == self.template) == current
        ]

    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.state is State.READY]

    def serving(self) -> list[Replica]:
        """Ready and in the ingress configuration nginx runs: what clients can reach."""
        return [r for r in self.ready() if r.routed]


CommandFactory = Callable[[EndpointSpec], ReplicaCommand]


class Supervisor:
    def __init__(
        self,
        ingress: IngressLike,
        make_command: CommandFactory,
        log_dir: Path,
        pid_file: Path,
        cgroups: Cgroups,
        tenant_ca: Callable[[str], str | None],
    ) -> None:
        self.ingress = ingress
        self.make_command = make_command
        self.log_dir = log_dir
        self.pid_file = pid_file
        self.cgroups = cgroups
        self.tenant_ca = tenant_ca
        self._states: dict[tuple[str, str], EndpointState] = {}
        self._retiring: list[Replica] = []  # out of every endpoint, being drained or stopped
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._routes: list[Route] | None = None
        self._ingress_error: str | None = None
        self._next_apply = 0.0
        self._served: frozenset[int] = frozenset()  # ports the running configuration routes to
        self._pids_text: str | None = None  # what the pid file holds
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    # -- the runtime's side ---------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def set_desired(self, spec: EndpointSpec, limits: Limits) -> None:
        key = (spec.tenant, spec.name)
        with self._lock:
            state = self._states.get(key)
            template = template_of(spec)
            if state is None:
                self._states[key] = EndpointState(spec, template, self.make_command(spec), limits)
            else:
                if template != state.template:
                    state.failures, state.next_start, state.last_error = 0, 0.0, None
                    state.command = self.make_command(spec)
                    state.limits = limits
                state.spec, state.template = spec, template
        self._wake.set()

    def remove(self, tenant: str, name: str) -> None:
        with self._lock:
            state = self._states.pop((tenant, name), None)
            if state is not None:
                for replica in state.replicas:
                    self._retire(replica)
        self._wake.set()

    def endpoints(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._states)

    def observe(self, tenant: str, name: str) -> EndpointObservation | None:
        with self._lock:
            state = self._states.get((tenant, name))
            if state is None:
                return None
            return EndpointObservation(
                status=self._status(state),
                desired_replicas=state.spec.replicas,
                ready_replicas=len(state.serving()),
                updated_replicas=len([r for r in state.serving() if r.template == state.template]),
                last_error=state.last_error
                or self.ingress.rejected.get((tenant, name))
                or self._ingress_error,
                limits_enforced=None if state.limits.empty else self.cgroups.enforced,
            )

    def shutdown(self, grace: float = 25.0) -> None:
        """Stops every replica (SIGTERM, then SIGKILL after ``grace``)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        with self._lock:
            replicas = [r for s in self._states.values() for r in s.replicas] + self._retiring
            self._states.clear()
        for replica in replicas:
            replica.terminate()
        deadline = time.monotonic() + grace
        for replica in replicas:
            try:
                replica.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except Exception:
                replica.kill()
                replica.proc.wait()
            replica.reap()
        self.pid_file.unlink(missing_ok=True)

    # -- the loop -------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("supervisor tick failed")
            self._wake.wait(TICK)
            self._wake.clear()

    def tick(self) -> None:
        with self._lock:
            for state in self._states.values():
                self._converge(state)
            routes = self._build_routes()
            draining = [r for r in self._retiring if r.state is State.DRAINING]
        now = time.monotonic()
        if routes != self._routes and now >= self._next_apply:
            try:
                self.ingress.apply(routes)  # outside the lock: a reload takes a moment
                self._routes, self._ingress_error = routes, None
                self._served = self._routed_ports(routes)
            except IngressError as exc:  # nginx keeps running the last good configuration
                log.error("ingress refused the new configuration: %s", exc)
                self._ingress_error = f"ingress: {exc}"[:2000]
                self._next_apply = now + INGRESS_RETRY
        served = self._served
        for replica in draining:  # out of the running configuration: its drain clock starts
            if replica.drain_started is None and replica.port not in served:
                replica.drain_started = now
        # Whether nginx's old workers have let go: asked once per tick, outside the lock.
        clocks = any(r.drain_started is not None for r in draining)
        drained = clocks and self.ingress.wait_drained(0)
        with self._lock:
            for st in self._states.values():
                for replica in st.replicas:
                    replica.routed = replica.port in served
            self._finish_retiring(drained)
        self._write_pids()

    def _routed_ports(self, routes: Sequence[Route]) -> frozenset[int]:
        """The backends of the routes the ingress took (not those it left out)."""
        rejected = self.ingress.rejected
        return frozenset(
            port
            for route in routes
            if (route.tenant, route.endpoint) not in rejected
            for port in route.backends
        )

    def _converge(self, st: EndpointState) -> None:
        now = time.monotonic()
        for replica in list(st.replicas):
            if not replica.alive():
                self._lost(st, replica, now)
            elif replica.state is State.STARTING:
                if replica.check_ready():
                    replica.state = State.READY
                    st.failures, st.last_error = 0, None
                    log.info("%s/%s replica %s ready", st.spec.tenant, st.spec.name, replica.id)
                elif now - replica.started > START_TIMEOUT:
                    st.last_error = f"replica not ready within {START_TIMEOUT:.0f}s"
                    replica.kill()
        desired = st.spec.replicas
        # Replicas of an old template that are not serving yet are no use: drop them.
        for replica in st.active(current=False):
            if replica.state is State.STARTING:
                self._detach(st, replica)
        current = st.active(current=True)
        # Too many of the current template: drop those still starting first.
        extra = len(current) - desired
        for replica in sorted(current, key=lambda r: r.state is State.READY)[: max(0, extra)]:
            self._detach(st, replica)
        # Serving more than wanted (a new replica became ready): retire old ones first.
        serving = st.ready()
        excess = len(serving) - desired
        for replica in sorted(serving, key=lambda r: r.template == st.template)[: max(0, excess)]:
            self._detach(st, replica)
        # Start one replica per tick while short, with one replica of surge at most.
        current = st.active(current=True)
        active = current + st.active(current=False)
        if len(current) < desired and len(active) < desired + 1 and now >= st.next_start:
            self._start(st)
        if len(st.ready()) >= desired:
            st.lost = False

    def _start(self, st: EndpointState) -> None:
        name = f"{st.spec.tenant}.{st.spec.name}.{len(st.replicas)}-{time.monotonic_ns()}"
        procs = self.cgroups.create(name, st.limits)
        replica = Replica(
            st.template,
            st.command,
            self.log_dir / st.spec.tenant / st.spec.name,
            procs,
            on_cleanup=lambda: self.cgroups.remove(name),
        )
        st.replicas.append(replica)
        log.info(
            "%s/%s starting replica %s on port %d (version %d)",
            st.spec.tenant, st.spec.name, replica.id, replica.port, st.spec.model_version,
        )  # fmt: skip

    def _lost(self, st: EndpointState, replica: Replica, now: float) -> None:
        """A replica of this endpoint exited on its own: record why, replace it later."""
        was_ready = replica.state is State.READY
        st.last_error = replica.exit_message()
        replica.reap()
        st.replicas.remove(replica)
        st.lost = True
        if was_ready:
            st.next_start = now  # a crash after serving: replace at once
        else:
            st.failures += 1
            st.next_start = now + min(BACKOFF_MAX, 0.5 * 2**st.failures)
        log.warning("%s/%s replica %s died: %s", st.spec.tenant, st.spec.name, replica.id,
                    st.last_error)  # fmt: skip

    def _detach(self, st: EndpointState, replica: Replica) -> None:
        st.replicas.remove(replica)
        self._retire(replica)

    def _retire(self, replica: Replica) -> None:
        if replica.state is State.READY:
            replica.state = State.DRAINING  # leaves the ingress on the next apply
        else:
            replica.terminate()
        self._retiring.append(replica)

    def _finish_retiring(self, drained: bool) -> None:
        """``drained``: no nginx worker of an earlier configuration is left."""
        now = time.monotonic()
        for replica in list(self._retiring):
            if replica.state is State.DRAINING:
                since = replica.drain_started
                if since is not None and (drained or now - since > DRAIN_TIMEOUT):
                    replica.terminate()
            elif not replica.alive():
                replica.reap()
                self._retiring.remove(replica)
            elif replica.state is State.STOPPING and now > replica.stop_deadline:
                replica.kill()

    def _build_routes(self) -> list[Route]:
        routes = []
        for (tenant, name), st in sorted(self._states.items()):
            ca = self.tenant_ca(tenant)
            if ca is None:
                continue
            routes.append(
                Route(
                    host=st.spec.host,
                    tenant=tenant,
                    endpoint=name,
                    ca_pem=ca,
                    subject_name=st.spec.subject_name,
                    backends=tuple(sorted(r.port for r in st.ready())),
                    scaled_to_zero=st.spec.replicas == 0,
                )
            )
        return routes

    def _status(self, st: EndpointState) -> EndpointStatus:
        desired, ready = st.spec.replicas, len(st.serving())
        if desired == 0:
            return "scaled to 0"
        if ready >= desired:
            return "running"
        if ready == 0:
            return "failed" if st.failures >= FAILED_AFTER else "pending"
        return "degraded" if st.lost or st.failures else "pending"

    def _write_pids(self) -> None:
        with self._lock:
            pids = [r.pid for s in self._states.values() for r in s.replicas]
            pids += [r.pid for r in self._retiring]
        text = "\n".join(map(str, sorted(pids)))
        if text == self._pids_text:
            return
        try:
            self.pid_file.parent.mkdir(parents=True, exist_ok=True)
            self.pid_file.write_text(text)
            self._pids_text = text
        except OSError as exc:
            log.warning("cannot record replica pids: %s", exc)
