"""The kubernetes runtime's calls, through the official client, against FakeKubeApiServer."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fixtures.fake_kube_api import FakeKubeApiServer, Recorded
from k8s_samples import CA_PEM, STORE, TENANT, endpoint

from imm.runtime.kubernetes import KubernetesRuntime
from imm.runtime.kubernetes.apply import ClusterError

NS = "imm-acme"
ANN = "nginx.ingress.kubernetes.io"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _applies(requests: list[Recorded]) -> list[tuple[str, str | None, str]]:
    return [r.target for r in requests if r.method == "PATCH"]


def _assert_server_side_apply(requests: list[Recorded]) -> None:
    patches = [r for r in requests if r.method == "PATCH"]
    assert patches
    for r in patches:
        assert r.content_type == "application/apply-patch+yaml", r.path
        assert r.query.get("fieldManager") == "imm", r.path
        assert r.query.get("force") == "true", r.path


def _platform_tls(fake: FakeKubeApiServer) -> None:
    """The platform's wildcard certificate, as the operator creates it in imm-system."""
    fake.put("namespaces", {"metadata": {"name": "imm-system"}})
    fake.put(
        "secrets",
        {
            "metadata": {"name": "imm-tls", "namespace": "imm-system"},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": _b64("CRT"), "tls.key": _b64("KEY")},
        },
    )


@pytest.fixture
def tenant(runtime: KubernetesRuntime, fake_api: FakeKubeApiServer) -> str:
    _platform_tls(fake_api)
    runtime.apply_tenant(TENANT)
    fake_api.take_requests()
    return NS


# -- tenants --------------------------------------------------------------------------------


def test_create_tenant_applies_namespace_quota_secrets_and_network_policy(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    _platform_tls(fake_api)
    runtime.apply_tenant(TENANT)
    requests = fake_api.take_requests()
    _assert_server_side_apply(requests)
    assert _applies(requests) == [
        ("namespaces", None, NS),
        ("resourcequotas", NS, "imm-quota"),
        ("secrets", NS, "imm-tenant-ca"),
        ("secrets", NS, "imm-store"),
        ("secrets", NS, "imm-tls"),
        ("networkpolicies", NS, "imm-model-servers"),
    ]
    ns = fake_api.get("namespaces", NS)
    assert ns is not None
    assert ns["metadata"]["labels"]["imm.io/tenant"] == "acme"
    assert ns["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "imm"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    quota = fake_api.get("resourcequotas", "imm-quota", NS)
    assert quota is not None
    assert quota["spec"]["hard"] == {
        "requests.cpu": "4",
        "limits.cpu": "8",
        "requests.memory": "8Gi",
        "limits.memory": "16Gi",
        "count/deployments.apps": "5",
    }
    ca = fake_api.get("secrets", "imm-tenant-ca", NS)
    assert ca is not None and base64.b64decode(ca["data"]["ca.crt"]).decode() == CA_PEM
    store = fake_api.get("secrets", "imm-store", NS)
    assert store is not None
    assert {k: base64.b64decode(v).decode() for k, v in store["data"].items()} == {
        "IMM_S3_ENDPOINT": STORE.endpoint,
        "IMM_S3_ACCESS_KEY": STORE.access_key,
        "IMM_S3_SECRET_KEY": STORE.secret_key,
        "IMM_S3_REGION": STORE.region,
    }
    tls = fake_api.get("secrets", "imm-tls", NS)
    assert tls is not None and tls["type"] == "kubernetes.io/tls"
    assert base64.b64decode(tls["data"]["tls.key"]) == b"KEY"
    policy = fake_api.get("networkpolicies", "imm-model-servers", NS)
    assert policy is not None
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8500}]
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/component": "model-server"
    }


def test_reapplying_a_tenant_changes_the_quota_in_place(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer, tenant: str
) -> None:
    runtime.apply_tenant(type(TENANT)(name="acme", scope="acme-users", ca_pem=CA_PEM))
    quota = fake_api.get("resourcequotas", "imm-quota", tenant)
    assert quota is not None and quota["spec"]["hard"] == {}


def test_without_a_platform_tls_secret_the_controller_default_certificate_serves(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    runtime.apply_tenant(TENANT)
    assert fake_api.names("secrets", NS) == ["imm-store", "imm-tenant-ca"]


def test_delete_tenant_deletes_its_namespace_in_the_foreground(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer, tenant: str
) -> None:
    runtime.apply_endpoint(endpoint())
    fake_api.take_requests()
    runtime.delete_tenant("acme")
    (request,) = fake_api.take_requests()
    assert (request.method, request.target) == ("DELETE", ("namespaces", None, NS))
    assert request.query.get("propagationPolicy") == "Foreground"
    assert fake_api.get("namespaces", NS) is None
    assert fake_api.names("deployments", NS) == []
    runtime.delete_tenant("acme")  # already gone: not an error


# -- endpoints ------------------------------------------------------------------------------


def _deployment(fake: FakeKubeApiServer, name: str = "resnet") -> dict[str, Any]:
    obj = fake.get("deployments", name, NS)
    assert obj is not None
    return obj


def test_create_endpoint_applies_deployment_service_and_ingress(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer, tenant: str
) -> None:
    runtime.apply_endpoint(endpoint(replicas=2))
    requests = fake_api.take_requests()
    _assert_server_side_apply(requests)
    assert _applies(requests) == [
        ("deployments", NS, "resnet"),
        ("services", NS, "resnet"),
        ("ingresses", NS, "resnet"),
    ]
    spec = _deployment(fake_api)["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:3] == ["python", "-m", "imm.serving"]
    args = container["command"]
    assert args[args.index("--model-base-path") + 1] == "s3://imm-acme/resnet50"
    assert args[args.index("--model-version") + 1] == "1"
    assert args[args.index("--port") + 1] == "8500"
    # as the local runtime starts it: one inference thread per CPU of the limit, and a
    # grace period that fits the pod's (preStop 5s + 20s < 30s)
    assert args[args.index("--intra-op-threads") + 1] == "1"
    assert args[args.index("--inter-op-threads") + 1] == "1"
    assert args[args.index("--grace-period") + 1] == "20"
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert container["readinessProbe"]["grpc"] == {"port": 8500}
    assert container["livenessProbe"]["grpc"] == {"port": 8500}
    assert {e["name"] for e in container["env"] if "valueFrom" in e} == {
        "IMM_S3_ENDPOINT",
        "IMM_S3_ACCESS_KEY",
        "IMM_S3_SECRET_KEY",
        "IMM_S3_REGION",
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    service = fake_api.get("services", "resnet", NS)
    assert service is not None
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    ingress = fake_api.get("ingresses", "resnet", NS)
    assert ingress is not None
    annotations = ingress["metadata"]["annotations"]
    assert annotations[f"{ANN}/backend-protocol"] == "GRPC"
    assert annotations[f"{ANN}/auth-tls-verify-client"] == "on"
    assert annotations[f"{ANN}/auth-tls-secret"] == f"{NS}/imm-tenant-ca"
    assert annotations[f"{ANN}/auth-tls-match-cn"].startswith("CN=")
    assert "CN=client(" in annotations[f"{ANN}/auth-tls-match-cn"]
    assert annotations[f"{ANN}/proxy-body-size"] == "64m"  # large Predict requests pass
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["resnet-acme.imm.example.com"], "secretName": "imm-tls"}
    ]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "resnet-acme.imm.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "resnet",
        "port": {"name": "grpc"},
    }


def test_endpoint_of_an_unknown_tenant_is_refused_by_the_cluster(
    runtime: KubernetesRuntime,
) -> None:
    with pytest.raises(ClusterError) as caught:
        runtime.apply_endpoint(endpoint())
    assert caught.value.status == 404
    assert 'namespaces "imm-acme" not found' in str(caught.value)


def test_reapplying_the_same_endpoint_changes_nothing(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer, tenant: str
) -> None:
    runtime.apply_endpoint(endpoint())
    first = _deployment(fake_api)
    runtime.apply_endpoint(endpoint())
    again = _deployment(fake_api)
    assert again["metadata"]["generation"] == first["metadata"]["generation"] == 1
    assert again["spec"] == first["spec"]


def test_new_model_version_changes_the_pod_template_so_pods_roll(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer, tenant: str
) -> None:
    runtime.apply_endpoint(endpoint(version=1))
    before = _deployment(fake_api)
    fake_api.take_requests()
    runtime.apply_endpoint(endpoint(version=2))
    assert _applies(fake_api.take_requests())[0] == ("deployments", NS, "resnet")
    after = _deployment(fake_api)
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    template = after["spec"]["template"]
    assert template["metadata"]["labels"]["imm.io/model-version"] == "2"
    args = template["spec"]["containers"][0]["command"]
    assert args[args.index("--model-version") + 1] == "2"
    assert after["spec"]["selector"] == before["spec"]["selector"]


def test_new_subject_name_changes_the_ingress_only(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer, tenant: str
) -> None:
    runtime.apply_endpoint(endpoint())
    before = _deployment(fake_api)
    runtime.apply_endpoint(endpoint(subject_name="other"))
    assert _deployment(fake_api)["spec"] == before["spec"]
    ingress = fake_api.get("ingresses", "resnet", NS)
    assert ingress is not None
    assert "CN=other(" in ingress["metadata"]["annotations"][f"{ANN}/auth-tls-match-cn"]


@pytest.mark.parametrize("replicas", [3, 0, 1])
def test_scaling_applies_the_replica_count(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer, tenant: str, replicas: int
) -> None:
    runtime.apply_endpoint(endpoint(replicas=2))
    runtime.apply_endpoint(endpoint(replicas=replicas))
    assert _deployment(fake_api)["spec"]["replicas"] == replicas
    observed = runtime.observe_endpoint("acme", "resnet")
    assert observed is not None
    assert observed.desired_replicas == replicas
    if replicas == 0:
        assert observed.status == "scaled to 0"


def test_delete_endpoint_removes_routing_first_and_pods_in_the_foreground(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer, tenant: str
) -> None:
    runtime.apply_endpoint(endpoint())
    fake_api.take_requests()
    runtime.delete_endpoint("acme", "resnet")
    requests = fake_api.take_requests()
    assert [(r.method, r.target) for r in requests] == [
        ("DELETE", ("ingresses", NS, "resnet")),
        ("DELETE", ("services", NS, "resnet")),
        ("DELETE", ("deployments", NS, "resnet")),
    ]
    assert all(r.query.get("propagationPolicy") == "Foreground" for r in requests)
    assert fake_api.names("deployments", NS) == fake_api.names("ingresses", NS) == []
    assert fake_api.get("secrets", "imm-tenant-ca", NS) is not None  # the tenant stays
    assert runtime.observe_endpoint("acme", "resnet") is None
    runtime.delete_endpoint("acme", "resnet")  # already gone: not an error
