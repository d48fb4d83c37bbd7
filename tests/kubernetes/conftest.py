"""Fixtures of the kubernetes runtime tests: a FAKE API server and the real runtime on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.fake_kube_api import FakeKubeApiServer
from k8s_samples import SETTINGS, STORE

from imm.runtime.kubernetes import KubernetesRuntime


@pytest.fixture
def fake_api() -> Iterator[FakeKubeApiServer]:
    server = FakeKubeApiServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def runtime(fake_api: FakeKubeApiServer, tmp_path: Path) -> Iterator[KubernetesRuntime]:
    """The real runtime and the real client, configured by a kubeconfig naming the fake."""
    kubeconfig = fake_api.write_kubeconfig(tmp_path / "kubeconfig")
    settings = SETTINGS.model_copy(update={"kubeconfig": str(kubeconfig)})
    rt = KubernetesRuntime(settings, STORE)
    try:
        yield rt
    finally:
        rt.close()
