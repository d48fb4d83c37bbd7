"""Every object the kubernetes runtime renders is valid for supported Kubernetes versions,
checked against the published OpenAPI schemas (strict: unknown fields are errors)."""

from __future__ import annotations

import kubernetes_validate
import pytest
from k8s_samples import K8S_VERSIONS, SETTINGS, STORE, TENANT, endpoint

from imm.runtime.kubernetes import render


def _objects() -> list[tuple[str, dict]]:
    tls = render.TlsMaterial(crt=b"-----BEGIN CERTIFICATE-----", key=b"-----BEGIN KEY-----")
    objects = [("tenant", obj) for obj in render.render_tenant(TENANT, SETTINGS, STORE, tls)]
    objects += [
        ("tenant-no-quota", obj)
        for obj in render.render_tenant(
            type(TENANT)(name="tiny", scope="tiny", ca_pem="x"), SETTINGS, STORE
        )
    ]
    for replicas in (0, 1, 3):
        spec = endpoint(replicas=replicas)
        objects += [
            (f"endpoint-{replicas}", o) for o in render.render_endpoint(spec, SETTINGS, STORE)
        ]
    bare = endpoint(replicas=2, resources={}, name="1st-endpoint")
    objects += [("endpoint-bare", o) for o in render.render_endpoint(bare, SETTINGS, STORE)]
    return objects


OBJECTS = _objects()


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "obj", [o for _, o in OBJECTS], ids=[f"{c}-{o['kind']}" for c, o in OBJECTS]
)
def test_rendered_object_is_valid(obj: dict, version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def test_every_kind_is_covered() -> None:
    kinds = {o["kind"] for _, o in OBJECTS}
    assert kinds == {
        "Namespace",
        "ResourceQuota",
        "Secret",
        "NetworkPolicy",
        "Deployment",
        "Service",
        "Ingress",
    }


def test_validation_is_strict() -> None:
    """Guards the guard: a misspelt field must fail, or the tests above prove nothing."""
    deployment = next(o for _, o in OBJECTS if o["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)
