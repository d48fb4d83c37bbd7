"""What the runtime reports it holds (the reconciler deletes the rest), and its start/stop,
through the real client against FakeKubeApiServer."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from fixtures.fake_kube_api import FakeKubeApiServer
from fixtures.platform import free_port
from k8s_samples import SETTINGS, STORE, TENANT, endpoint

from imm.runtime.base import TenantSpec
from imm.runtime.kubernetes import KubernetesRuntime
from imm.runtime.kubernetes.apply import ClusterError

MANAGED = {"app.kubernetes.io/managed-by": "imm"}


def _namespace(name: str, labels: dict[str, str], deleting: bool = False) -> dict:
    meta: dict = {"name": name, "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:01Z"
    return {"metadata": meta}


def test_tenants_and_endpoints_applied_are_listed(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    assert runtime.list_tenants() == set() and runtime.list_endpoints() == set()
    runtime.apply_tenant(TENANT)
    runtime.apply_tenant(TenantSpec(name="beta", scope="beta", ca_pem="x"))
    runtime.apply_endpoint(endpoint())
    runtime.apply_endpoint(endpoint(name="other", replicas=0))
    runtime.apply_endpoint(endpoint(tenant="beta", name="resnet"))
    fake_api.take_requests()
    assert runtime.list_tenants() == {"acme", "beta"}
    assert runtime.list_endpoints() == {("acme", "resnet"), ("acme", "other"), ("beta", "resnet")}
    namespaces, deployments = fake_api.take_requests()
    assert (namespaces.verb, namespaces.target) == ("list", ("namespaces", None, ""))
    assert namespaces.query["labelSelector"] == "app.kubernetes.io/managed-by=imm,imm.io/tenant"
    assert (deployments.verb, deployments.target) == ("list", ("deployments", None, ""))
    assert deployments.path == "/apis/apps/v1/deployments"  # all namespaces, one call
    assert "app.kubernetes.io/component=model-server" in deployments.query["labelSelector"]

    runtime.delete_endpoint("acme", "other")
    runtime.delete_tenant("beta")
    assert runtime.list_tenants() == {"acme"}
    assert runtime.list_endpoints() == {("acme", "resnet")}


def test_nothing_of_another_platform_or_being_deleted_is_claimed(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    """Whatever is listed may be deleted by the reconciler: only our own objects count."""
    runtime.apply_tenant(TENANT)
    runtime.apply_endpoint(endpoint())
    tenant_labels = {**MANAGED, "imm.io/tenant": "acme"}
    for ns in (
        _namespace("team-x", {}),  # not IMM's
        _namespace("other-acme", tenant_labels),  # an IMM with another namespace prefix
        _namespace("imm-system", {**MANAGED, "imm.io/tenant": "system"}),  # the platform
        _namespace("imm-gone", {**MANAGED, "imm.io/tenant": "gone"}, deleting=True),
    ):
        fake_api.put("namespaces", ns)
    labels = {
        **tenant_labels,
        "imm.io/endpoint": "resnet",
        "app.kubernetes.io/component": "model-server",
    }
    gone = {"deletionTimestamp": "2026-01-01T00:00:01Z"}
    for name, namespace, own_labels, extra in (
        ("resnet", "other-acme", labels, {}),  # another platform's copy of our endpoint
        ("renamed", "imm-acme", labels, {}),  # not the name our endpoint's Deployment has
        ("leaving", "imm-acme", {**labels, "imm.io/endpoint": "leaving"}, gone),
        ("web", "imm-acme", {"app": "web"}, {}),  # a user's own Deployment
    ):
        meta = {"name": name, "namespace": namespace, "labels": own_labels, **extra}
        fake_api.put("deployments", {"metadata": meta, "spec": {}})
    assert runtime.list_tenants() == {"acme"}
    assert runtime.list_endpoints() == {("acme", "resnet")}


def test_listing_failures_are_cluster_errors(fake_api: FakeKubeApiServer, tmp_path: Path) -> None:
    kubeconfig = fake_api.write_kubeconfig(tmp_path / "kubeconfig")
    kubeconfig.write_text(kubeconfig.read_text().replace("fake-token", "wrong-token"))
    runtime = KubernetesRuntime(SETTINGS.model_copy(update={"kubeconfig": str(kubeconfig)}), STORE)
    try:
        with pytest.raises(ClusterError, match="list namespaces") as caught:
            runtime.list_tenants()
        assert caught.value.status == 401
        with pytest.raises(ClusterError, match="list deployments"):
            runtime.list_endpoints()
    finally:
        runtime.close()


def test_start_checks_the_cluster_once_and_stop_closes_the_client(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.apply_tenant(TENANT)
    fake_api.take_requests()
    with caplog.at_level(logging.INFO, logger="imm.runtime.kubernetes.runtime"):
        assert runtime.check_cluster() is True
    assert [r.verb for r in fake_api.take_requests()] == ["list"]
    assert f"kubernetes API server {fake_api.url}: 1 tenant namespaces" in caplog.text
    runtime.start()  # the same check, in the background
    deadline = time.monotonic() + 30
    while not fake_api.requests:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    runtime.stop()


def test_without_a_cluster_the_check_warns_and_start_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``imm up`` must come up (and serve the API) while the cluster is unreachable."""
    fake = FakeKubeApiServer().start()
    path = fake.write_kubeconfig(tmp_path / "kubeconfig")
    fake.stop()  # nothing listens there any more
    path.write_text(path.read_text().replace(fake.url, f"http://127.0.0.1:{free_port()}"))
    settings = SETTINGS.model_copy(update={"kubeconfig": str(path)})
    runtime = KubernetesRuntime(settings, STORE)
    runtime.start()
    with caplog.at_level(logging.WARNING, logger="imm.runtime.kubernetes.runtime"):
        assert runtime.check_cluster() is False
    assert "not usable yet" in caplog.text
    runtime.stop()
