"""Specs the kubernetes tests share: a tenant with a full quota, endpoints with resources."""

from __future__ import annotations

from imm.domain.names import endpoint_host
from imm.runtime.base import EndpointSpec, TenantSpec
from imm.runtime.kubernetes.settings import KubernetesSettings, StoreAccess

# Minor versions of Kubernetes supported upstream at the time of writing; schemas of each
# ship with kubernetes-validate.
K8S_VERSIONS = ("1.35", "1.36", "1.37")

DOMAIN = "imm.example.com"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

TENANT = TenantSpec(
    name="acme",
    scope="acme-users",
    ca_pem=CA_PEM,
    quota={
        "requests.cpu": "4",
        "limits.cpu": "8",
        "requests.memory": "8Gi",
        "limits.memory": "16Gi",
        "maxEndpoints": 5,
    },
)

RESOURCES = {
    "requests.cpu": "500m",
    "limits.cpu": "1",
    "requests.memory": "512Mi",
    "limits.memory": "1Gi",
}


def endpoint(replicas: int = 1, version: int = 1, **changes: object) -> EndpointSpec:
    values: dict[str, object] = {
        "tenant": "acme",
        "name": "resnet",
        "subject_name": "client",
        "model_name": "resnet50",
        "model_version": version,
        "replicas": replicas,
        "resources": dict(RESOURCES),
    }
    values.update(changes)
    values.setdefault("host", endpoint_host(str(values["name"]), str(values["tenant"]), DOMAIN))
    return EndpointSpec(**values)  # type: ignore[arg-type]


SETTINGS = KubernetesSettings(
    namespace_prefix="imm-",
    model_server_image="registry.example/imm-model-server:0.1.0",
    ingress_class="nginx",
    ingress_namespace="ingress-nginx",
    tls_secret="imm-tls",
    cache_size="10Gi",
)
STORE = StoreAccess(
    endpoint="http://minio.imm-system.svc:9000",
    access_key="imm",
    secret_key="imm-secret",
    region="us-east-1",
    bucket_prefix="imm-",
)
