"""Settings of the kubernetes runtime and the object names it derives."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from fixtures.fake_kube_api import FakeKubeApiServer
from k8s_samples import STORE, TENANT, endpoint

from imm.config import Settings
from imm.domain.errors import InvalidInput
from imm.runtime.base import Runtime, TenantSpec
from imm.runtime.kubernetes import KubernetesRuntime, KubernetesSettings, names
from imm.runtime.kubernetes.apply import ClusterError


def test_settings_come_from_imm_k8s_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMM_K8S_MODEL_SERVER_IMAGE", "reg.example/ms:1.2.3")
    monkeypatch.setenv("IMM_K8S_INGRESS_NAMESPACE", "edge")
    monkeypatch.setenv("IMM_K8S_TLS_SECRET", "")
    monkeypatch.setenv("IMM_K8S_CRASH_RESTARTS", "5")
    platform = Settings()
    assert platform.k8s_model_server_image == "reg.example/ms:1.2.3"
    settings = KubernetesSettings.from_settings(platform)
    assert settings.model_server_image == "reg.example/ms:1.2.3"
    assert settings.ingress_namespace == "edge"
    assert settings.tls_secret == ""
    assert settings.crash_restarts == 5
    assert settings.namespace_prefix == "imm-"


def test_the_runtime_view_has_every_k8s_setting_with_its_default() -> None:
    """One list of settings (imm.config): the view neither adds nor drops nor redefaults."""
    platform = {n[4:]: f.default for n, f in Settings.model_fields.items() if n.startswith("k8s_")}
    view = {n: f.default for n, f in KubernetesSettings.model_fields.items()}
    assert view == platform
    assert KubernetesSettings.from_settings(Settings()) == KubernetesSettings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IMM_K8S_NAMESPACE_PREFIX", "Imm_"),
        ("IMM_K8S_IMAGE_PULL_POLICY", "Sometimes"),
        ("IMM_K8S_CRASH_RESTARTS", "0"),
        ("IMM_K8S_REQUEST_TIMEOUT_SECONDS", "0"),
    ],
)
def test_bad_k8s_settings_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable.removeprefix("IMM_").lower()):
        Settings()


def test_from_settings_needs_the_s3_store() -> None:
    with pytest.raises(ValueError, match="IMM_STORE=s3"):
        KubernetesRuntime.from_settings(Settings(store="fs"))


def test_from_settings_follows_the_api_store_choice(
    fake_api: FakeKubeApiServer, tmp_path: Path
) -> None:
    s3 = {"s3_endpoint": "http://minio:9000", "s3_access_key": "ak", "s3_secret_key": "sk"}
    k8s = KubernetesSettings(kubeconfig=str(fake_api.write_kubeconfig(tmp_path / "kubeconfig")))
    # IMM_STORE=fs: the API writes the filesystem, which model servers could not read.
    with pytest.raises(ValueError, match="IMM_STORE=s3"):
        KubernetesRuntime.from_settings(Settings(store="fs", **s3), k8s)
    # An S3 endpoint without IMM_STORE means S3 for the API's store too.
    runtime = KubernetesRuntime.from_settings(Settings(**s3), k8s)
    assert runtime.store.endpoint == "http://minio:9000"
    runtime.close()


def test_from_settings_takes_the_store_from_the_platform_settings(
    fake_api: FakeKubeApiServer, tmp_path: Path
) -> None:
    settings = Settings(
        store="s3",
        s3_endpoint="http://minio:9000",
        s3_access_key="ak",
        s3_secret_key="sk",
        s3_bucket_prefix="models-",
    )
    kubeconfig = fake_api.write_kubeconfig(tmp_path / "kubeconfig")
    runtime = KubernetesRuntime.from_settings(
        settings, KubernetesSettings(kubeconfig=str(kubeconfig))
    )
    try:
        assert runtime.store.bucket("acme") == "models-acme"
        runtime.apply_tenant(TENANT)
        assert fake_api.get("namespaces", "imm-acme") is not None
    finally:
        runtime.close()


def test_api_server_refusals_become_cluster_errors(
    fake_api: FakeKubeApiServer, tmp_path: Path
) -> None:
    kubeconfig = fake_api.write_kubeconfig(tmp_path / "kubeconfig")
    kubeconfig.write_text(kubeconfig.read_text().replace("fake-token", "wrong-token"))
    settings = KubernetesSettings(kubeconfig=str(kubeconfig), tls_secret="")
    runtime = KubernetesRuntime(settings, STORE)
    try:
        with pytest.raises(ClusterError) as caught:
            runtime.apply_tenant(TENANT)
        assert caught.value.status == 401
        assert "apply Namespace imm-acme" in str(caught.value)
    finally:
        runtime.close()


def test_names_fit_kubernetes_limits() -> None:
    tenant = "t" * 63
    ns = names.namespace("imm-", tenant)
    assert len(ns) == 63 and ns.startswith("imm-ttt")
    assert ns == names.namespace("imm-", tenant)  # deterministic
    assert ns != names.namespace("imm-", "t" * 62 + "u")
    assert names.namespace("imm-", "acme") == "imm-acme"
    assert names.service("resnet") == "resnet"
    assert names.service("1st") == "ep-1st"  # Service names must start with a letter
    long_digit = "1" + "a" * 62
    assert len(names.service(long_digit)) == 63 and names.service(long_digit).startswith("ep-1")


def test_a_tenant_cannot_take_the_platform_namespace(
    runtime: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    system = TenantSpec(name="system", scope="x", ca_pem="x")
    with pytest.raises(InvalidInput, match="reserved"):
        runtime.apply_tenant(system)
    with pytest.raises(InvalidInput, match="reserved"):
        runtime.delete_tenant("system")
    with pytest.raises(InvalidInput, match="reserved"):
        runtime.apply_endpoint(endpoint(tenant="system"))
    assert fake_api.take_requests() == []


@pytest.mark.parametrize(
    "method",
    [
        "start",
        "stop",
        "apply_tenant",
        "delete_tenant",
        "apply_endpoint",
        "delete_endpoint",
        "observe_endpoint",
        "list_endpoints",
        "list_tenants",
    ],
)
def test_the_runtime_has_the_protocol_signatures(method: str) -> None:
    """The reconciler holds a ``Runtime``; this one must be a drop-in for the local one."""
    wanted = inspect.signature(getattr(Runtime, method))
    actual = inspect.signature(getattr(KubernetesRuntime, method))
    assert list(actual.parameters) == list(wanted.parameters)
    assert str(actual.return_annotation) == str(wanted.return_annotation)
