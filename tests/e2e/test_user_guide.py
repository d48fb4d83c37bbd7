"""The whole user guide against the real platform: API, replicas, nginx, mutual TLS."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
from fixtures.grpc_client import Caller, ClientIdentity, IngressClient, TenantPki
from fixtures.onnx_models import affine_model
from fixtures.platform import USER_PASSWORD, Platform

from imm.client import Client

TENANT = "guide"
X = np.ones((1, 4), dtype=np.float32)


def wait_for(
    client: Client, endpoint: str, check: Callable[[dict], bool], timeout: float = 180
) -> dict:
    """Polls the endpoint view until ``check`` holds (the reconciler works asynchronously)."""
    deadline = time.monotonic() + timeout
    view = client.get_endpoint(TENANT, endpoint)
    while not check(view):
        if time.monotonic() > deadline:
            raise AssertionError(f"endpoint never reached the expected state: {view}")
        time.sleep(0.3)
        view = client.get_endpoint(TENANT, endpoint)
    return view


def settled(status: str, ready: int | None = None) -> Callable[[dict], bool]:
    def check(view: dict) -> bool:
        return (
            view["status"] == status
            and view["observedGeneration"] == view["generation"]
            and (ready is None or view["readyReplicas"] == ready)
            and (ready is None or view["updatedReplicas"] == ready)
        )

    return check


def upload_file(client: Client, model: str, version: int, path: Path) -> None:
    upload_id = client.upload_start(TENANT, model, version, path.name)
    etag = client.upload_part(TENANT, upload_id, 1, path.read_bytes())["ETag"]
    client.upload_done(TENANT, upload_id, [(1, etag)])


def replica_pids(platform: Platform) -> list[int]:
    pid_file = platform.data_dir / "runtime" / "replicas.pid"
    pids = [int(p) for p in pid_file.read_text().split()] if pid_file.exists() else []
    return [p for p in pids if Path(f"/proc/{p}").exists()]


def expect_code(client: IngressClient, code: grpc.StatusCode, model: str = "affine") -> str:
    with pytest.raises(grpc.RpcError) as refused:
        client.predict(X, model)
    assert refused.value.code() == code, refused.value
    return refused.value.details() or ""


def test_user_guide_end_to_end(platform: Platform, tmp_path: Path) -> None:
    pki = TenantPki()
    with platform.client() as admin:
        created = admin.post(
            "/tenants",
            json={"name": TENANT, "cert": pki.ca_pem, "scope": "guide-users",
                  "quota": {"maxEndpoints": 3}},
        )  # fmt: skip
        assert created.status_code == 201, created.text
    platform.add_user("gina", "guide-users")
    user = Client(platform.url, platform.token("gina"))

    upload_file(user, "affine", 1, affine_model(tmp_path / "v1" / "model.onnx", 1.0, 1.0))
    upload_file(user, "affine", 2, affine_model(tmp_path / "v2" / "model.onnx", 1.0, 2.0))
    assert [(m["name"], m["version"]) for m in user.list_models(TENANT)] == [
        ("affine", 1),
        ("affine", 2),
    ]

    made = user.create_endpoint(TENANT, "scorer", "client", "affine", 1, replicas=2)
    host = f"scorer-{TENANT}.imm.localhost"
    assert made["url"] == host
    port = made["port"]
    assert str(port) == platform.env["IMM_INGRESS_LISTEN"].rsplit(":", 1)[1]
    assert made["status"] == "pending"
    view = wait_for(user, "scorer", settled("running", ready=2))
    assert view["modelPath"] == f"{TENANT}/affine/1"
    assert view["subjectName"] == "client"
    assert user.list_endpoints(TENANT) == [{"name": "scorer", "url": host, "status": "running"}]
    usage = user.get_tenant(TENANT)["usage"]
    assert usage["endpoints"] == 1

    server_ca = Path(platform.imm("certs", "server-ca").stdout.strip())
    assert server_ca.exists()
    identity = pki.client("client")
    good = IngressClient(port, host, server_ca, identity)
    np.testing.assert_allclose(good.predict(X, "affine"), X + 1)

    # The same through the CLI, as the guide shows it: `imm predict ENDPOINT`.
    (tmp_path / "client.crt").write_bytes(identity.cert or b"")
    (tmp_path / "client.key").write_bytes(identity.key or b"")
    np.save(tmp_path / "x.npy", X)
    login = platform.imm("login", "--api", platform.url, "-u", "gina", "-p", USER_PASSWORD)
    assert login.returncode == 0, login.stderr
    first = platform.imm(
        "predict", "scorer", "--client-cert", str(tmp_path / "client.crt"),
        "--client-key", str(tmp_path / "client.key"), "--input", str(tmp_path / "x.npy"),
        "-o", "json",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["outputs"]["y"] == [[2.0, 2.0, 2.0, 2.0]]
    again = platform.imm("predict", "scorer", "--input", str(tmp_path / "x.npy"), "-o", "json")
    assert again.returncode == 0, again.stderr  # certificate paths remembered in ~/.imm

    # Refused: another CN of the same CA, another CA, no certificate at all.
    other_cn = IngressClient(port, host, server_ca, pki.client("other"))
    expect_code(other_cn, grpc.StatusCode.PERMISSION_DENIED)
    foreign = IngressClient(port, host, server_ca, TenantPki().client("client"))
    expect_code(foreign, grpc.StatusCode.UNAUTHENTICATED)
    anonymous = IngressClient(port, host, server_ca, ClientIdentity(None, None))
    expect_code(anonymous, grpc.StatusCode.UNAUTHENTICATED)

    # Rolling update to version 2 under continuous calls: nothing fails, answers switch.
    with Caller(good, "affine") as caller:
        caller.wait_for_answers(20)
        updated = user.update_endpoint(TENANT, "scorer", modelVersion=2)
        assert updated["modelVersion"] == 2
        view = wait_for(user, "scorer", lambda v: settled("running", ready=2)(v)
                        and v["modelVersion"] == 2)  # fmt: skip
        caller.wait_for_answers(20)
    assert caller.failures == [], caller.failures[:5]
    assert caller.answers[0] == 2.0  # x + 1 with x = 1
    assert caller.answers[-1] == 3.0  # x + 2
    assert set(caller.answers) == {2.0, 3.0}
    np.testing.assert_allclose(good.predict(X, "affine"), X + 2)

    # Scale to 0: the endpoint stays defined, calls are UNAVAILABLE and say why.
    user.scale_endpoint(TENANT, "scorer", 0)
    wait_for(user, "scorer", settled("scaled to 0"))
    deadline = time.monotonic() + 60
    while True:
        try:
            good.predict(X, "affine")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            assert "scaled to 0" in (exc.details() or "")
            break
        assert time.monotonic() < deadline, "scaled-to-0 endpoint kept answering"
        time.sleep(0.2)
    assert user.list_endpoints(TENANT)[0]["status"] == "scaled to 0"

    # Back to 1, then 2: serving again.
    user.scale_endpoint(TENANT, "scorer", 1)
    wait_for(user, "scorer", settled("running", ready=1))
    np.testing.assert_allclose(good.predict(X, "affine"), X + 2)
    user.scale_endpoint(TENANT, "scorer", 2)
    wait_for(user, "scorer", settled("running", ready=2))

    # SIGKILL one of two replicas while calling: it is replaced, and a client with the
    # standard retry policy for UNAVAILABLE sees no failure (nginx sends new calls to the
    # other replica at once; a call in flight on the killed one comes back UNAVAILABLE).
    before = replica_pids(platform)
    assert len(before) == 2, before
    retrying = IngressClient(port, host, server_ca, identity, retry_unavailable=True)
    with Caller(retrying, "affine") as caller:
        caller.wait_for_answers(20)
        os.kill(before[0], signal.SIGKILL)
        caller.wait_for_answers(50)
        view = wait_for(
            user,
            "scorer",
            lambda v: v["readyReplicas"] == 2 and before[0] not in replica_pids(platform),
        )
        caller.wait_for_answers(20)
    assert caller.failures == [], caller.failures[:5]
    after = replica_pids(platform)
    assert len(after) == 2 and before[0] not in after and before[1] in after
    assert view["status"] == "running"
    assert view["lastError"] is None  # cleared once the replacement serves

    # Delete: replicas stop, the ingress forgets the host, the model stays.
    user.delete_endpoint(TENANT, "scorer")
    assert user.list_endpoints(TENANT) == []
    deadline = time.monotonic() + 60
    while replica_pids(platform) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert replica_pids(platform) == []
    assert [m["version"] for m in user.list_models(TENANT)] == [1, 2]
    with pytest.raises(grpc.RpcError):
        good.predict(X, "affine")
    for c in (good, retrying, other_cn, foreign, anonymous):
        c.close()
