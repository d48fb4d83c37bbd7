"""The local runtime as an operator meets it: restarts, crashes, limits, tenant isolation."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
from fixtures.grpc_client import IngressClient, TenantPki
from fixtures.onnx_models import affine_model, busy_model
from fixtures.platform import Platform

from imm.client import Client
from imm.serving.protos import predict_pb2
from imm.serving.tensors import make_tensor_proto

CLK_TCK = os.sysconf("SC_CLK_TCK")


def model_servers(data_dir: Path) -> list[int]:
    """Every model-server process of this platform, found the hard way: through /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"imm.serving" in argv and any(str(data_dir).encode() in a for a in argv):
            found.append(int(entry.name))
    return sorted(found)


def nginx_masters(data_dir: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        is_nginx = argv.startswith(b"nginx: master") or (b"nginx" in argv and b" -p " in argv)
        if is_nginx and str(data_dir).encode() in argv:
            found.append(int(entry.name))
    return found


def make_tenant(platform: Platform, name: str, tmp: Path, model: Path) -> tuple[Client, TenantPki]:
    pki = TenantPki()
    with platform.client() as admin:
        created = admin.post("/tenants", json={"name": name, "cert": pki.ca_pem, "scope": name})
        assert created.status_code == 201, created.text
    platform.add_user(f"{name}-user", name)
    client = Client(platform.url, platform.token(f"{name}-user"))
    upload_id = client.upload_start(name, "model", 1, "model.onnx")
    etag = client.upload_part(name, upload_id, 1, model.read_bytes())["ETag"]
    client.upload_done(name, upload_id, [(1, etag)])
    return client, pki


def wait_running(
    client: Client, tenant: str, endpoint: str, ready: int, timeout: float = 180
) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        view = client.get_endpoint(tenant, endpoint)
        if view["status"] == "running" and view["readyReplicas"] == ready:
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.3)


def wait_until(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.3)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restart_brings_endpoints_back_without_orphans(
    make_platform: Callable[..., Platform], tmp_path: Path, how: str
) -> None:
    platform = make_platform()
    data_dir = platform.data_dir.resolve()
    client, _ = make_tenant(platform, "rs-team", tmp_path, affine_model(tmp_path / "m.onnx", 1, 1))
    client.create_endpoint("rs-team", "steady", "client", "model", 1, replicas=2)
    wait_running(client, "rs-team", "steady", 2)
    first = model_servers(data_dir)
    assert len(first) == 2

    if how == "sigterm":
        assert platform.stop(signal.SIGTERM) == 0
        assert model_servers(data_dir) == []  # a clean stop stops every replica
        assert nginx_masters(data_dir) == []
    else:
        platform.stop(signal.SIGKILL)  # a crash: nothing of ours cleans up
        wait_until(lambda: model_servers(data_dir) == [])  # replicas die with their parent

    platform.start()
    client = Client(platform.url, platform.token("rs-team-user"))
    view = wait_running(client, "rs-team", "steady", 2)
    assert view["replicas"] == 2
    servers = model_servers(data_dir)
    assert len(servers) == 2, servers  # no duplicate and no orphan
    assert not set(servers) & set(first)
    assert len(nginx_masters(data_dir)) == 1


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cores_used_under_load(
    platform: Platform,
    client: Client,
    tenant: str,
    endpoint: str,
    pki: TenantPki,
    seconds: float = 4.0,
) -> float:
    """CPU time the replica burns per wall-clock second while 4 clients keep it busy."""
    before_pids = set(model_servers(platform.data_dir.resolve()))
    view = client.get_endpoint(tenant, endpoint)
    server_ca = platform.data_dir / "pki" / "ca.crt"
    ingress = IngressClient(view["port"], view["url"], server_ca, pki.client("client"))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "model"
    request.inputs["x"].CopyFrom(make_tensor_proto(np.ones((16, 256), dtype=np.float32)))
    stop = threading.Event()
    errors: list[str] = []

    def hammer() -> None:
        while not stop.is_set():
            try:
                ingress.stub.Predict(request, timeout=60)
            except grpc.RpcError as exc:
                errors.append(f"{exc.code().name}: {exc.details()}")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # let it reach a steady state
    pid = next(iter(before_pids))
    cpu0, wall0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu1, wall1 = cpu_seconds(pid), time.monotonic()
    stop.set()
    for t in threads:
        t.join()
    ingress.close()
    assert not errors, errors[:3]
    return (cpu1 - cpu0) / (wall1 - wall0)


def throttled_periods(pid: int) -> int:
    """How often the kernel held the process back for exceeding its CPU quota."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(",") or controllers == "":
            base = Path("/sys/fs/cgroup") / ("cpu" if controllers else "") / path.lstrip("/")
            stat = base / "cpu.stat"
            if stat.exists():
                fields = dict(row.split() for row in stat.read_text().splitlines())
                return int(fields.get("nr_throttled", 0))
    return 0


def test_cpu_limit_holds_a_replica_to_half_a_core(
    make_platform: Callable[..., Platform], tmp_path: Path
) -> None:
    from imm.runtime.local.cgroups import Cgroups

    if not Cgroups().enforced:
        pytest.skip("cgroups are not writable here: limits are accounted only")
    platform = make_platform()
    client, pki = make_tenant(platform, "cpu-team", tmp_path, busy_model(tmp_path / "busy.onnx"))
    client.create_endpoint(
        "cpu-team", "capped", "client", "model", 1, replicas=1,
        resources={"limits.cpu": "500m", "requests.cpu": "500m"},
    )  # fmt: skip
    view = wait_running(client, "cpu-team", "capped", 1)
    assert view["limitsEnforced"] is True
    (pid,) = model_servers(platform.data_dir.resolve())
    throttled_before = throttled_periods(pid)
    capped = cores_used_under_load(platform, client, "cpu-team", "capped", pki)
    assert capped <= 0.6, f"a 500m replica used {capped:.2f} cores"
    # The quota is what held it back: the kernel throttled it while it wanted more.
    assert throttled_periods(pid) > throttled_before


def test_a_certificate_of_tenant_a_is_refused_by_tenant_b(
    platform: Platform, tmp_path: Path
) -> None:
    model = affine_model(tmp_path / "m.onnx", 1, 1)
    alpha, alpha_pki = make_tenant(platform, "iso-alpha", tmp_path, model)
    beta, beta_pki = make_tenant(platform, "iso-beta", tmp_path, model)
    alpha.create_endpoint("iso-alpha", "shared", "client", "model", 1)
    beta.create_endpoint("iso-beta", "shared", "client", "model", 1)
    a_view = wait_running(alpha, "iso-alpha", "shared", 1)
    b_view = wait_running(beta, "iso-beta", "shared", 1)
    server_ca = platform.data_dir / "pki" / "ca.crt"
    x = np.ones((1, 4), dtype=np.float32)

    own = IngressClient(b_view["port"], b_view["url"], server_ca, beta_pki.client("client"))
    np.testing.assert_allclose(own.predict(x, "model"), x + 1)
    crossing = IngressClient(b_view["port"], b_view["url"], server_ca, alpha_pki.client("client"))
    with pytest.raises(grpc.RpcError) as refused:
        crossing.predict(x, "model")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # And the other way round.
    back = IngressClient(a_view["port"], a_view["url"], server_ca, beta_pki.client("client"))
    with pytest.raises(grpc.RpcError) as refused_back:
        back.predict(x, "model")
    assert refused_back.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for c in (own, crossing, back):
        c.close()
