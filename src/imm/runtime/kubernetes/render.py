"""Tenants and endpoints as Kubernetes manifests: pure functions, no cluster needed.

Each function returns the complete desired objects (plain dicts, as server-side apply takes
them), in the order they should be applied. Fields the runtime does not own are left out,
so server-side apply leaves them to whoever owns them (e.g. an autoscaler's annotations).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from imm.domain.quantities import MAX_ENDPOINTS, RESOURCE_KEYS
from imm.runtime.base import EndpointSpec, TenantSpec
from imm.runtime.kubernetes import names
from imm.runtime.kubernetes.settings import KubernetesSettings, StoreAccess
from imm.runtime.kubernetes.subject import match_cn
from imm.runtime.serving_args import intra_op_threads, model_server_argv

Manifest = dict[str, Any]

NGINX = "nginx.ingress.kubernetes.io"
CACHE_DIR = "/var/cache/imm"
RUN_AS = 10001  # the non-root user of the model-server image
MAX_REQUEST_BODY = "64m"


@dataclass(frozen=True)
class TlsMaterial:
    """The platform's server certificate for ``*.<domain>``, copied into tenant namespaces."""

    crt: bytes
    key: bytes


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _meta(name: str, namespace: str | None, labels: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


# -- tenant ---------------------------------------------------------------------------------


def render_tenant(
    spec: TenantSpec,
    settings: KubernetesSettings,
    store: StoreAccess,
    tls: TlsMaterial | None = None,
) -> list[Manifest]:
    """Namespace, quota, CA and store secrets, (platform TLS copy) and the network policy."""
    ns = names.namespace(settings.namespace_prefix, spec.name)
    labels = names.tenant_labels(spec.name)
    objects = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                # The model servers meet the "restricted" Pod Security Standard; enforcing
                # it keeps anything else out of a tenant's namespace too.
                **_meta(ns, None, {**labels, "pod-security.kubernetes.io/enforce": "restricted"}),
                "annotations": {f"{names.LABEL_PREFIX}/scope": spec.scope},
            },
        },
        render_quota(spec, ns, labels),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(names.CA_SECRET, ns, labels),
            "type": "Opaque",
            "data": {"ca.crt": _b64(spec.ca_pem)},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(names.STORE_SECRET, ns, labels),
            "type": "Opaque",
            "data": {
                "IMM_S3_ENDPOINT": _b64(store.endpoint),
                "IMM_S3_ACCESS_KEY": _b64(store.access_key),
                "IMM_S3_SECRET_KEY": _b64(store.secret_key),
                "IMM_S3_REGION": _b64(store.region),
            },
        },
    ]
    if settings.tls_secret and tls is not None:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": _meta(settings.tls_secret, ns, labels),
                "type": "kubernetes.io/tls",
                "data": {"tls.crt": _b64(tls.crt), "tls.key": _b64(tls.key)},
            }
        )
    objects.append(render_network_policy(ns, labels, settings.ingress_namespace))
    return objects


def render_quota(spec: TenantSpec, namespace: str, labels: dict[str, str]) -> Manifest:
    """Always rendered (maybe with no limits), so removing a quota key removes the limit."""
    hard: dict[str, str] = {key: str(spec.quota[key]) for key in RESOURCE_KEYS if key in spec.quota}
    if MAX_ENDPOINTS in spec.quota:
        hard["count/deployments.apps"] = str(spec.quota[MAX_ENDPOINTS])
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(names.QUOTA_NAME, namespace, labels),
        "spec": {"hard": hard},
    }


def render_network_policy(
    namespace: str, labels: dict[str, str], ingress_namespace: str
) -> Manifest:
    """Model servers take gRPC only from the ingress controller: mTLS is checked there."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(names.NETWORK_POLICY, namespace, labels),
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": names.COMPONENT}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": ingress_namespace}
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": names.GRPC_PORT}],
                }
            ],
        },
    }


# -- endpoint -------------------------------------------------------------------------------


def render_endpoint(
    spec: EndpointSpec, settings: KubernetesSettings, store: StoreAccess
) -> list[Manifest]:
    """Deployment, Service and Ingress, in the order they should be applied."""
    return [
        render_deployment(spec, settings, store),
        render_service(spec, settings),
        render_ingress(spec, settings),
    ]


def container_resources(resources: dict[str, str]) -> dict[str, dict[str, str]]:
    """``{"limits.cpu": "1"}`` -> ``{"limits": {"cpu": "1"}}``; empty sections are dropped."""
    result: dict[str, dict[str, str]] = {}
    for key in RESOURCE_KEYS:
        if key in resources:
            section, resource = key.split(".", 1)
            result.setdefault(section, {})[resource] = str(resources[key])
    return result


def model_server_args(spec: EndpointSpec, store: StoreAccess) -> list[str]:
    return model_server_argv(
        "python",
        model_name=spec.model_name,
        model_version=spec.model_version,
        base_path=f"s3://{store.bucket(spec.tenant)}/{spec.model_name}",
        host="0.0.0.0",
        port=names.GRPC_PORT,
        cache_dir=CACHE_DIR,
        threads=intra_op_threads(spec.resources),
    )


def _grpc_probe(period: int, failures: int) -> dict[str, Any]:
    """Kubelet's own gRPC health check (grpc.health.v1, service ""): no probe binary needed."""
    return {
        "grpc": {"port": names.GRPC_PORT},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def render_deployment(
    spec: EndpointSpec, settings: KubernetesSettings, store: StoreAccess
) -> Manifest:
    ns = names.namespace(settings.namespace_prefix, spec.tenant)
    labels = names.endpoint_labels(spec.tenant, spec.name)
    # The model and its version sit in the pod template, so changing either rolls the pods.
    pod_labels = {
        **labels,
        names.MODEL_LABEL: spec.model_name,
        names.VERSION_LABEL: str(spec.model_version),
    }
    env = [
        {
            "name": key,
            "valueFrom": {"secretKeyRef": {"name": names.STORE_SECRET, "key": key}},
        }
        for key in ("IMM_S3_ENDPOINT", "IMM_S3_ACCESS_KEY", "IMM_S3_SECRET_KEY", "IMM_S3_REGION")
    ]
    env.append({"name": "HOME", "value": "/tmp"})
    cache: dict[str, Any] = {}
    if settings.cache_size:
        cache["sizeLimit"] = settings.cache_size
    container: dict[str, Any] = {
        "name": names.CONTAINER,
        "image": settings.model_server_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": model_server_args(spec, store),
        "ports": [{"name": "grpc", "containerPort": names.GRPC_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": container_resources(spec.resources),
        # Downloading and warming a model can take minutes: only the startup probe waits.
        "startupProbe": _grpc_probe(5, max(1, settings.startup_seconds // 5)),
        "readinessProbe": _grpc_probe(5, 2),
        "livenessProbe": _grpc_probe(10, 3),
        # ingress-nginx drops a terminating pod from its upstreams a moment after the pod is
        # marked terminating; serving on through that moment keeps rolling updates lossless.
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        # The last log lines become the termination message: the endpoint's last error.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "model-cache", "mountPath": CACHE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            **_meta(names.deployment(spec.name), ns, labels),
            "annotations": {f"{names.LABEL_PREFIX}/subject-name": spec.subject_name},
        },
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": settings.progress_deadline_seconds,
            "selector": {"matchLabels": names.selector(spec.tenant, spec.name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "model-cache", "emptyDir": cache},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def render_service(spec: EndpointSpec, settings: KubernetesSettings) -> Manifest:
    ns = names.namespace(settings.namespace_prefix, spec.tenant)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(
            names.service(spec.name), ns, names.endpoint_labels(spec.tenant, spec.name)
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector(spec.tenant, spec.name),
            "ports": [
                {
                    "name": "grpc",
                    "port": names.GRPC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/h2c",
                }
            ],
        },
    }


def render_ingress(spec: EndpointSpec, settings: KubernetesSettings) -> Manifest:
    """ingress-nginx terminates TLS, verifies the client against the tenant CA, checks the
    subject CN and forwards gRPC (h2c) to the Service."""
    ns = names.namespace(settings.namespace_prefix, spec.tenant)
    host = spec.host
    tls: dict[str, Any] = {"hosts": [host]}
    if settings.tls_secret:
        tls["secretName"] = settings.tls_secret
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            **_meta(names.ingress(spec.name), ns, names.endpoint_labels(spec.tenant, spec.name)),
            "annotations": {
                f"{NGINX}/backend-protocol": "GRPC",
                f"{NGINX}/ssl-redirect": "true",
                f"{NGINX}/auth-tls-verify-client": "on",
                f"{NGINX}/auth-tls-secret": f"{ns}/{names.CA_SECRET}",
                f"{NGINX}/auth-tls-verify-depth": "1",
                f"{NGINX}/auth-tls-match-cn": match_cn(spec.subject_name),
                # nginx's default 1m body limit would refuse large Predict requests (413);
                # this matches the model server's own default --max-request-bytes.
                f"{NGINX}/proxy-body-size": MAX_REQUEST_BODY,
            },
        },
        "spec": {
            "ingressClassName": settings.ingress_class,
            "tls": [tls],
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": names.service(spec.name),
                                        "port": {"name": "grpc"},
                                    }
                                },
                            }
                        ]
                    },
                }
            ],
        },
    }
