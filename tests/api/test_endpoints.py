"""Endpoints API: validation, quotas, isolation, and what deletion keeps and removes.

Every test runs on both runtimes (``make_runtime_platform``): local, and kubernetes against
a FakeKubeApiServer playing a healthy cluster. Where a test looks past the API (replica
processes, cluster objects), it looks where that runtime keeps them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.fake_kube_api import FakeKubeApiServer
from fixtures.grpc_client import TenantPki
from fixtures.onnx_models import affine_model
from fixtures.platform import ClusterPlatform, Platform

QUOTA = {
    "requests.cpu": "1",
    "limits.cpu": "2",
    "requests.memory": "1Gi",
    "limits.memory": "2Gi",
    "maxEndpoints": 2,
}
SMALL = {
    "requests.cpu": "100m",
    "limits.cpu": "500m",
    "requests.memory": "128Mi",
    "limits.memory": "512Mi",
}


def setup_tenant(
    platform: Platform, name: str, tmp: Path, quota: dict | None = None
) -> httpx.Client:
    """A tenant with a member, and model `affine` versions 1 and 2 uploaded."""
    with platform.client() as admin:
        response = admin.post(
            "/tenants",
            json={"name": name, "cert": TenantPki().ca_pem, "scope": name, "quota": quota or {}},
        )
        assert response.status_code == 201, response.text
    platform.add_user(f"{name}-user", name)
    client = platform.client(f"{name}-user")
    for version in (1, 2):
        data = affine_model(tmp / f"{name}-{version}.onnx", 1.0, float(version)).read_bytes()
        upload_id = client.post(
            f"/tenants/{name}/upload/start",
            json={"modelName": "affine", "modelVersion": version, "fileName": "model.onnx"},
        ).json()["uploadId"]
        etag = client.put(
            f"/tenants/{name}/upload",
            params={"uploadId": upload_id, "partNumber": 1},
            content=data,
        ).json()["ETag"]
        done = client.post(
            f"/tenants/{name}/upload/done",
            json={"uploadId": upload_id, "parts": [{"PartNumber": 1, "ETag": etag}]},
        )
        assert done.status_code == 200, done.text
    return client


def body(name: str = "ep-one", **changes: object) -> dict:
    base = {
        "endpointName": name,
        "subjectName": "client",
        "modelName": "affine",
        "modelVersion": 1,
        "replicas": 1,
        "resources": {},
    }
    base.update(changes)
    return base


def endpoint_names(client: httpx.Client, tenant: str) -> list[str]:
    return [e["name"] for e in client.get(f"/tenants/{tenant}/endpoints").json()]


@pytest.fixture(scope="module")
def cluster_platform(make_runtime_platform: Callable[..., ClusterPlatform]) -> ClusterPlatform:
    return make_runtime_platform()


@pytest.fixture(scope="module")
def platform(cluster_platform: ClusterPlatform) -> Platform:
    """Overrides the plugin's ``platform``: this module's platform, on each runtime."""
    return cluster_platform[0]


@pytest.fixture(scope="module")
def cluster(cluster_platform: ClusterPlatform) -> FakeKubeApiServer | None:
    """The fake cluster under the kubernetes runtime; None on the local runtime."""
    return cluster_platform[1]


def wait_for_view(
    client: httpx.Client, path: str, done: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    """The endpoint view once the reconciler has made ``done`` true of it."""
    deadline = time.monotonic() + timeout
    while True:
        view = client.get(path).json()
        if done(view):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.2)


@pytest.fixture(scope="module")
def tenant(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> httpx.Client:
    return setup_tenant(platform, "ep-api", tmp_path_factory.mktemp("models"))


INVALID = [
    ("endpoint name", {"endpointName": "Bad_Name"}, 400),
    ("endpoint name short", {"endpointName": "ab"}, 400),
    ("subject empty", {"subjectName": ""}, 400),
    ("subject slash", {"subjectName": "a/b"}, 400),
    ("subject comma", {"subjectName": "a,b"}, 400),
    ("subject equals", {"subjectName": "CN=x"}, 400),
    ("subject control", {"subjectName": "a\x01b"}, 400),
    ("subject too long", {"subjectName": "x" * 65}, 400),
    ("model name", {"modelName": "NoSuch"}, 400),
    ("version zero", {"modelVersion": 0}, 400),
    ("version text", {"modelVersion": "one"}, 400),
    ("replicas negative", {"replicas": -1}, 400),
    ("replicas too many", {"replicas": 101}, 400),
    ("replicas fraction", {"replicas": 1.5}, 400),
    ("resources unknown key", {"resources": {"gpu": "1"}}, 400),
    ("resources bad quantity", {"resources": {"limits.cpu": "lots"}}, 400),
    ("resources limits below requests",
     {"resources": {"requests.memory": "1Gi", "limits.memory": "1Mi"}}, 400),
    ("unknown model", {"modelName": "missing"}, 404),
    ("unknown version", {"modelVersion": 9}, 404),
    ("unknown field", {"colour": "red"}, 400),
    ("host label too long", {"endpointName": "e" * 60}, 400),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "status"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_endpoint_is_refused_and_nothing_created(
    tenant: httpx.Client, case: str, change: dict, status: int
) -> None:
    response = tenant.post("/tenants/ep-api/endpoints", json=body("ep-invalid", **change))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "ep-invalid" not in endpoint_names(tenant, "ep-api")


def test_create_duplicate_update_scale_delete(tenant: httpx.Client) -> None:
    created = tenant.post("/tenants/ep-api/endpoints", json=body("ep-crud", replicas=0))
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["url"] == "ep-crud-ep-api.imm.localhost"
    assert view["status"] == "scaled to 0"
    assert (view["replicas"], view["readyReplicas"]) == (0, 0)

    duplicate = tenant.post("/tenants/ep-api/endpoints", json=body("ep-crud", modelVersion=2))
    assert duplicate.status_code == 409
    assert tenant.get("/tenants/ep-api/endpoints/ep-crud").json()["modelVersion"] == 1

    generation = view["generation"]
    updated = tenant.patch(
        "/tenants/ep-api/endpoints/ep-crud", json={"modelVersion": 2, "subjectName": "svc-2"}
    )
    assert updated.status_code == 200, updated.text
    assert (updated.json()["modelVersion"], updated.json()["subjectName"]) == (2, "svc-2")
    assert updated.json()["generation"] == generation + 1
    for bad, code in (({"modelVersion": 7}, 404), ({"subjectName": "a=b"}, 400),
                      ({"replicas": 2}, 400), ({"resources": {"cpu": "1"}}, 400)):  # fmt: skip
        refused = tenant.patch("/tenants/ep-api/endpoints/ep-crud", json=bad)
        assert refused.status_code == code, (bad, refused.text)
    after = tenant.get("/tenants/ep-api/endpoints/ep-crud").json()
    assert (after["modelVersion"], after["subjectName"]) == (2, "svc-2")

    for bad in ({"replicas": -1}, {"replicas": 101}, {"replicas": "x"}, {}):
        assert (
            tenant.patch("/tenants/ep-api/endpoints/ep-crud/replicas", json=bad).status_code == 400
        )
    assert tenant.get("/tenants/ep-api/endpoints/no-such").status_code == 404
    assert (
        tenant.patch("/tenants/ep-api/endpoints/no-such/replicas", json={"replicas": 1}).status_code
        == 404
    )
    assert tenant.delete("/tenants/ep-api/endpoints/ep-crud").status_code == 204
    assert tenant.delete("/tenants/ep-api/endpoints/ep-crud").status_code == 404
    assert "ep-crud" not in endpoint_names(tenant, "ep-api")


def test_a_served_model_version_cannot_be_deleted(tenant: httpx.Client) -> None:
    assert (
        tenant.post("/tenants/ep-api/endpoints", json=body("ep-uses", replicas=0)).status_code
        == 201
    )
    refused = tenant.delete("/tenants/ep-api/models/affine/versions/1")
    assert refused.status_code == 409
    assert "ep-uses" in refused.json()["detail"]
    assert 1 in [m["version"] for m in tenant.get("/tenants/ep-api/models").json()]
    tenant.delete("/tenants/ep-api/endpoints/ep-uses")
    models = tenant.get("/tenants/ep-api/models").json()
    assert {m["version"] for m in models} == {1, 2}  # the model stays after the endpoint goes


def test_quota_refusals_change_nothing(platform: Platform, tmp_path: Path) -> None:
    client = setup_tenant(platform, "ep-quota", tmp_path, QUOTA)
    url = "/tenants/ep-quota/endpoints"

    # Every key the quota sets must be stated.
    missing = dict(SMALL)
    del missing["limits.memory"]
    refused = client.post(url, json=body("ep-q1", resources=missing))
    assert refused.status_code == 400
    assert "limits.memory" in refused.json()["detail"]

    # 2 x 500m = 1 core of limits.cpu; fine.
    assert client.post(url, json=body("ep-q1", replicas=2, resources=SMALL)).status_code == 201
    usage = client.get("/tenants/ep-quota").json()["usage"]
    assert usage == {"endpoints": 1, "requests.cpu": "200m", "limits.cpu": "1",
                     "requests.memory": "256Mi", "limits.memory": "1Gi"}  # fmt: skip

    # A second endpoint asking 3 x 500m would make 2.5 cores: refused, naming key and numbers.
    over = client.post(url, json=body("ep-q2", replicas=3, resources=SMALL))
    assert over.status_code == 409
    detail = over.json()["detail"]
    assert "limits.cpu" in detail and "2500m" in detail and "limit 2" in detail
    assert endpoint_names(client, "ep-quota") == ["ep-q1"]

    # Scaling past the quota: refused, replicas unchanged.
    scaled = client.patch(f"{url}/ep-q1/replicas", json={"replicas": 5})
    assert scaled.status_code == 409
    assert client.get(f"{url}/ep-q1").json()["replicas"] == 2

    # A rolling update needs room for one surge replica: 2 x 900m + 900m > 2 cores.
    bigger = dict(SMALL, **{"limits.cpu": "900m"})
    rolled = client.patch(f"{url}/ep-q1", json={"resources": bigger, "modelVersion": 2})
    assert rolled.status_code == 409
    assert "rolling update" in rolled.json()["detail"]
    kept = client.get(f"{url}/ep-q1").json()
    assert (kept["modelVersion"], kept["resources"]["limits.cpu"]) == (1, "500m")

    # maxEndpoints 2: the third endpoint is refused even with 0 replicas.
    assert client.post(url, json=body("ep-q2", replicas=0, resources=SMALL)).status_code == 201
    third = client.post(url, json=body("ep-q3", replicas=0, resources=SMALL))
    assert third.status_code == 409
    assert "maxEndpoints" in third.json()["detail"]
    assert endpoint_names(client, "ep-quota") == ["ep-q1", "ep-q2"]

    # Usage follows what is defined.
    client.patch(f"{url}/ep-q1/replicas", json={"replicas": 1})
    usage = client.get("/tenants/ep-quota").json()["usage"]
    assert (usage["endpoints"], usage["limits.cpu"], usage["limits.memory"]) == (2, "500m", "512Mi")


def test_tenants_cannot_touch_each_others_endpoints(platform: Platform, tmp_path: Path) -> None:
    red = setup_tenant(platform, "ep-red", tmp_path)
    blue = setup_tenant(platform, "ep-blue", tmp_path)
    assert (
        blue.post("/tenants/ep-blue/endpoints", json=body("secret", replicas=0)).status_code == 201
    )
    for method, path, payload in (
        ("GET", "/tenants/ep-blue/endpoints", None),
        ("GET", "/tenants/ep-blue/endpoints/secret", None),
        ("POST", "/tenants/ep-blue/endpoints", body("intruder", replicas=0)),
        ("PATCH", "/tenants/ep-blue/endpoints/secret", {"modelVersion": 2}),
        ("PATCH", "/tenants/ep-blue/endpoints/secret/replicas", {"replicas": 1}),
        ("DELETE", "/tenants/ep-blue/endpoints/secret", None),
    ):
        response = red.request(method, path, json=payload)
        assert response.status_code == 403, (method, path, response.text)
        assert "affine" not in response.text  # nothing about the endpoint leaks
    view = blue.get("/tenants/ep-blue/endpoints/secret").json()
    assert (view["replicas"], view["modelVersion"]) == (0, 1)


def test_deleting_a_tenant_stops_its_endpoints(
    make_runtime_platform: Callable[..., ClusterPlatform], tmp_path: Path
) -> None:
    platform, cluster = make_runtime_platform()
    client = setup_tenant(platform, "ep-doomed", tmp_path)
    assert client.post("/tenants/ep-doomed/endpoints", json=body("ep-live")).status_code == 201
    pid_file = platform.data_dir / "runtime" / "replicas.pid"

    def live_replicas() -> list[str]:
        """Replica processes (local), or the endpoint's Deployment and the tenant's
        namespace (kubernetes: the cluster stops the pods of what is deleted)."""
        if cluster is not None:
            return cluster.names("deployments", "imm-ep-doomed") + [
                n for n in cluster.names("namespaces") if n == "imm-ep-doomed"
            ]
        pids = pid_file.read_text().split() if pid_file.exists() else []
        return [p for p in pids if Path(f"/proc/{p}").exists()]

    deadline = time.monotonic() + 120
    while client.get("/tenants/ep-doomed/endpoints/ep-live").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert len(live_replicas()) == (1 if cluster is None else 2)
    with platform.client() as admin:
        assert admin.delete("/tenants/ep-doomed").status_code == 204
    deadline = time.monotonic() + 60
    while live_replicas() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert live_replicas() == []


# -- the kubernetes runtime: what the API's changes do to the cluster -------------------------

K8S_NS = "imm-ep-api"


def cluster_only(cluster: FakeKubeApiServer | None) -> FakeKubeApiServer:
    if cluster is None:
        pytest.skip("looks into the cluster; the local runtime's replicas are shown in tests/e2e")
    return cluster


def test_endpoint_changes_reach_the_cluster(
    tenant: httpx.Client, cluster: FakeKubeApiServer | None
) -> None:
    fake = cluster_only(cluster)
    path = "/tenants/ep-api/endpoints/ep-kube"
    created = tenant.post(
        "/tenants/ep-api/endpoints", json=body("ep-kube", replicas=2, resources=SMALL)
    )
    assert created.status_code == 201, created.text
    view = wait_for_view(tenant, path, lambda v: v["status"] == "running")
    assert (view["replicas"], view["readyReplicas"], view["lastError"]) == (2, 2, None)
    assert view["observedGeneration"] == view["generation"]

    def deployment() -> dict[str, Any]:
        found = fake.get("deployments", "ep-kube", K8S_NS)
        assert found is not None
        return found

    spec = deployment()["spec"]
    assert spec["replicas"] == 2
    (container,) = spec["template"]["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    service = fake.get("services", "ep-kube", K8S_NS)
    assert service is not None and service["spec"]["selector"] == spec["selector"]["matchLabels"]
    ingress = fake.get("ingresses", "ep-kube", K8S_NS)
    assert ingress is not None
    assert ingress["spec"]["rules"][0]["host"] == view["url"] == "ep-kube-ep-api.imm.localhost"

    scaled = tenant.patch(f"{path}/replicas", json={"replicas": 3})
    assert scaled.status_code == 200, scaled.text
    view = wait_for_view(tenant, path, lambda v: v["readyReplicas"] == 3)
    assert view["status"] == "running" and deployment()["spec"]["replicas"] == 3

    generation = deployment()["metadata"]["generation"]
    updated = tenant.patch(path, json={"modelVersion": 2, "subjectName": "svc-2"})
    assert updated.status_code == 200, updated.text
    view = wait_for_view(tenant, path, lambda v: v["observedGeneration"] == v["generation"])
    assert (view["status"], view["readyReplicas"], view["modelVersion"]) == ("running", 3, 2)
    rolled = deployment()
    assert rolled["metadata"]["generation"] == generation + 1  # a new pod template: pods roll
    assert rolled["spec"]["template"]["metadata"]["labels"]["imm.io/model-version"] == "2"
    ingress = fake.get("ingresses", "ep-kube", K8S_NS)
    assert ingress is not None
    assert (
        "CN=svc\\-2("
        in ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-tls-match-cn"]
    )

    assert tenant.patch(f"{path}/replicas", json={"replicas": 0}).status_code == 200
    # The API says "scaled to 0" at once; ready replicas count down as the cluster reports.
    view = wait_for_view(tenant, path, lambda v: v["readyReplicas"] == 0)
    assert (view["status"], view["replicas"]) == ("scaled to 0", 0)
    assert deployment()["spec"]["replicas"] == 0  # the endpoint stays defined

    assert tenant.delete(path).status_code == 204
    deadline = time.monotonic() + 60
    while fake.get("deployments", "ep-kube", K8S_NS) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert fake.get("services", "ep-kube", K8S_NS) is None
    assert fake.get("ingresses", "ep-kube", K8S_NS) is None
    assert tenant.get(path).status_code == 404


def _children(pid: int) -> list[str]:
    """Command lines of the processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append((stat.parent / "cmdline").read_text().replace("\0", " "))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


def test_on_kubernetes_imm_up_runs_no_replicas_or_nginx_of_its_own(
    platform: Platform, tenant: httpx.Client, cluster: FakeKubeApiServer | None
) -> None:
    cluster_only(cluster)
    path = "/tenants/ep-api/endpoints/ep-remote"
    assert tenant.post("/tenants/ep-api/endpoints", json=body("ep-remote")).status_code == 201
    wait_for_view(tenant, path, lambda v: v["status"] == "running")
    assert platform.process is not None
    assert _children(platform.process.pid) == []
    assert not (platform.data_dir / "runtime").exists()  # the local runtime's work dir
    assert tenant.delete(path).status_code == 204


QUOTA_REFUSAL = (
    'pods "ep-full-6b7c9d8f4-abcde" is forbidden: exceeded quota: imm-quota, '
    "requested: limits.cpu=500m, used: limits.cpu=2, limited: limits.cpu=2"
)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_quota_refusal_in_the_cluster_shows_as_last_error(
    tenant: httpx.Client, cluster: FakeKubeApiServer | None
) -> None:
    """The cluster's quota refuses the replacement of a pod (something else took the room):
    the Deployment reports no ready replica and its ReplicaSet a FailedCreate event."""
    fake = cluster_only(cluster)
    path = "/tenants/ep-api/endpoints/ep-full"
    assert tenant.post("/tenants/ep-api/endpoints", json=body("ep-full")).status_code == 201
    wait_for_view(tenant, path, lambda v: v["status"] == "running")
    healthy = fake.get("deployments", "ep-full", K8S_NS)
    assert healthy is not None
    now = datetime.now(UTC)
    fake.set_status(
        "deployments",
        K8S_NS,
        "ep-full",
        {
            "observedGeneration": healthy["metadata"]["generation"],
            "replicas": 0,
            "updatedReplicas": 0,
            "readyReplicas": 0,
            "availableReplicas": 0,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                 "message": "Deployment does not have minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": "ReplicaSet has successfully progressed.",
                 "lastUpdateTime": _stamp(now - timedelta(minutes=5)),
                 "lastTransitionTime": _stamp(now - timedelta(minutes=5))},
                {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                 "message": QUOTA_REFUSAL},
            ],
        },
    )  # fmt: skip
    fake.put(
        "events",
        {
            "metadata": {"name": "ep-full-6b7c9d8f4.quota", "namespace": K8S_NS},
            "involvedObject": {
                "kind": "ReplicaSet",
                "name": "ep-full-6b7c9d8f4",
                "namespace": K8S_NS,
            },
            "reason": "FailedCreate",
            "message": f"Error creating: {QUOTA_REFUSAL}",
            "type": "Warning",
            "count": 4,
            "firstTimestamp": _stamp(now),
            "lastTimestamp": _stamp(now),
        },
    )
    view = wait_for_view(tenant, path, lambda v: v["status"] == "failed")
    assert view["readyReplicas"] == 0
    assert view["lastError"].startswith("FailedCreate: Error creating:")
    assert "exceeded quota: imm-quota" in view["lastError"]
    listed = {e["name"]: e["status"] for e in tenant.get("/tenants/ep-api/endpoints").json()}
    assert listed["ep-full"] == "failed"

    # Room again: the pod is created and the error goes.
    status = dict(healthy["status"])
    fake.set_status("deployments", K8S_NS, "ep-full", status)
    view = wait_for_view(tenant, path, lambda v: v["status"] == "running")
    assert view["lastError"] is None
    assert tenant.delete(path).status_code == 204


def test_a_spec_the_cluster_refuses_shows_as_failed_with_the_reason(
    tenant: httpx.Client, cluster: FakeKubeApiServer | None
) -> None:
    """An admission webhook or policy refusing the Deployment is no transient state: the
    endpoint view says so, and recovers once the cluster accepts it."""
    fake = cluster_only(cluster)
    fake.refuse("deployments", "ep-refused", K8S_NS, message="denied by policy: no-gpu-nodes")
    path = "/tenants/ep-api/endpoints/ep-refused"
    assert tenant.post("/tenants/ep-api/endpoints", json=body("ep-refused")).status_code == 201
    view = wait_for_view(tenant, path, lambda v: v["status"] == "failed")
    assert "denied by policy: no-gpu-nodes" in view["lastError"]
    fake.allow("deployments", "ep-refused", K8S_NS)
    view = wait_for_view(tenant, path, lambda v: v["status"] == "running")
    assert view["lastError"] is None
    assert tenant.delete(path).status_code == 204


def test_on_kubernetes_a_tenant_cannot_take_the_platforms_namespace(
    platform: Platform, cluster: FakeKubeApiServer | None
) -> None:
    cluster_only(cluster)
    with platform.client() as admin:
        refused = admin.post(
            "/tenants", json={"name": "system", "cert": TenantPki().ca_pem, "scope": "x"}
        )
        assert refused.status_code == 400
        assert "reserved" in refused.json()["detail"]
        assert admin.get("/tenants/system").status_code == 404


def test_two_tenants_cannot_claim_the_same_host(platform: Platform, tmp_path: Path) -> None:
    """Endpoint `bbb-ccc` of tenant `aaa` and endpoint `bbb` of tenant `ccc-aaa` would both
    be `bbb-ccc-aaa.<domain>`: the second is refused."""
    first = setup_tenant(platform, "aaa", tmp_path)
    second = setup_tenant(platform, "ccc-aaa", tmp_path)
    assert first.post("/tenants/aaa/endpoints", json=body("bbb-ccc", replicas=0)).status_code == 201
    clash = second.post("/tenants/ccc-aaa/endpoints", json=body("bbb", replicas=0))
    assert clash.status_code == 409
    assert "bbb-ccc-aaa" in clash.json()["detail"]
    assert endpoint_names(second, "ccc-aaa") == []
