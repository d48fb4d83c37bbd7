"""The supervisor stops a retired replica only once the configuration nginx runs no longer
routes to it (no nginx or model server here: a fake ingress and fake replicas)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imm.runtime.base import EndpointSpec
from imm.runtime.local.cgroups import Cgroups, Limits
from imm.runtime.local.ingress import IngressError, Route
from imm.runtime.local.replica import State
from imm.runtime.local.supervisor import EndpointState, Supervisor, template_of

CA = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"


class FakeIngress:
    def __init__(self) -> None:
        self.rejected: dict[tuple[str, str], str] = {}
        self.refuse = False
        self.drained_asked = 0

    def apply(self, routes: Sequence[Route]) -> bool:
        if self.refuse:
            raise IngressError("nginx refused the configuration")
        return True

    def wait_drained(self, timeout: float) -> bool:
        self.drained_asked += 1
        return True


class FakeReplica:
    def __init__(self, port: int, template: str) -> None:
        self.port, self.template, self.pid = port, template, 40000 + port
        self.state = State.READY
        self.routed = False
        self.drain_started: float | None = None
        self.stop_deadline = 0.0

    def alive(self) -> bool:
        return True

    def check_ready(self) -> bool:
        return True

    def terminate(self) -> None:
        self.state = State.STOPPING
        self.stop_deadline = float("inf")


def supervisor(tmp_path: Path, ingress: FakeIngress, replicas: int = 1) -> Supervisor:
    sup = Supervisor(
        ingress=ingress,
        make_command=lambda spec: None,  # type: ignore[arg-type,return-value]
        log_dir=tmp_path / "logs",
        pid_file=tmp_path / "replicas.pid",
        cgroups=Cgroups(),
        tenant_ca=lambda tenant: CA,
    )
    spec = EndpointSpec("acme", "demo", "client", "m", 1, replicas, host="demo-acme.imm.test")
    state = EndpointState(spec, template_of(spec), None, Limits())  # type: ignore[arg-type]
    state.replicas = [FakeReplica(port, state.template) for port in range(9001, 9001 + replicas)]  # type: ignore[misc]
    sup._states[("acme", "demo")] = state
    return sup


def test_a_retired_replica_is_stopped_only_after_nginx_took_the_configuration(
    tmp_path: Path,
) -> None:
    ingress = FakeIngress()
    sup = supervisor(tmp_path, ingress)
    sup.tick()
    (old,) = sup._states[("acme", "demo")].replicas
    assert old.routed
    ingress.refuse = True
    sup.remove("acme", "demo")
    for _ in range(3):
        sup.tick()
    # nginx still runs the configuration that routes to it: no drain clock, no SIGTERM
    assert old.state is State.DRAINING and old.drain_started is None
    assert ingress.drained_asked == 0
    ingress.refuse = False
    sup._next_apply = 0.0
    sup.tick()
    assert old.drain_started is not None
    assert old.state is State.STOPPING
    assert sup._pids_text == str(old.pid)


def test_a_route_the_ingress_left_out_does_not_serve(tmp_path: Path) -> None:
    ingress = FakeIngress()
    ingress.rejected = {("acme", "demo"): "bad CA"}
    sup = supervisor(tmp_path, ingress)
    sup.tick()
    (replica,) = sup._states[("acme", "demo")].replicas
    assert not replica.routed
    seen = sup.observe("acme", "demo")
    assert seen is not None and seen.ready_replicas == 0 and seen.last_error == "bad CA"
