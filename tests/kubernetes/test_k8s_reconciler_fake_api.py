"""The reconciler driving the kubernetes runtime against FakeKubeApiServer: tenants before
their endpoints, removal of what the database no longer has, and one refused object never
holding up the others."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.fake_kube_api import FakeKubeApiServer
from k8s_samples import CA_PEM, SETTINGS, STORE

from imm.config import Settings
from imm.control.reconciler import Reconciler
from imm.db.engine import Database
from imm.db.tables import Endpoint, Tenant
from imm.runtime.kubernetes import KubernetesRuntime

DOMAIN = "imm.example.com"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeKubeApiServer]:
    server = FakeKubeApiServer(instant_rollouts=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'imm.db'}")
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def reconciler(cluster: FakeKubeApiServer, db: Database, tmp_path: Path) -> Iterator[Reconciler]:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    settings = SETTINGS.model_copy(update={"kubeconfig": str(kubeconfig)})
    runtime = KubernetesRuntime(settings, STORE)
    try:
        yield Reconciler(db, runtime, Settings(domain=DOMAIN, data_dir=tmp_path))
    finally:
        runtime.close()


def _add(db: Database, *rows: Tenant | Endpoint) -> None:
    with db.open() as session:
        session.add_all(rows)
        session.commit()


def _tenant(name: str) -> Tenant:
    return Tenant(name=name, scope=name, ca_cert_pem=CA_PEM, quota={})


def _endpoint(tenant: str, name: str, replicas: int = 1) -> Endpoint:
    return Endpoint(
        tenant=tenant,
        name=name,
        subject_name="client",
        model_name="affine",
        model_version=1,
        replicas=replicas,
        resources={},
    )


def _status(db: Database, tenant: str, name: str) -> tuple[str, int, str | None]:
    with db.open() as session:
        row = session.get(Endpoint, (tenant, name))
        assert row is not None
        return row.status, row.ready_replicas, row.last_error


def test_a_new_tenant_gets_its_namespace_before_its_endpoints(
    reconciler: Reconciler, cluster: FakeKubeApiServer, db: Database
) -> None:
    _add(db, _tenant("acme"))
    _add(db, _endpoint("acme", "ep-one", replicas=2))
    reconciler.reconcile_once()
    applied = [r.target for r in cluster.take_requests() if r.verb == "apply"]
    assert applied[0] == ("namespaces", None, "imm-acme")
    assert applied.index(("deployments", "imm-acme", "ep-one")) > applied.index(
        ("networkpolicies", "imm-acme", "imm-model-servers")
    )
    deployment = cluster.get("deployments", "ep-one", "imm-acme")
    assert deployment is not None and deployment["spec"]["replicas"] == 2
    assert _status(db, "acme", "ep-one") == ("running", 2, None)


def test_one_refused_object_does_not_hold_up_the_others(
    reconciler: Reconciler,
    cluster: FakeKubeApiServer,
    db: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # "system" maps to the platform's namespace and is refused by the runtime itself; the
    # cluster refuses the Ingress of ep-one (e.g. an admission webhook).
    _add(db, _tenant("system"), _tenant("acme"), _tenant("beta"))
    _add(db, _endpoint("acme", "ep-one"), _endpoint("acme", "ep-two"), _endpoint("beta", "ep-b"))
    cluster.refuse("ingresses", "ep-one", "imm-acme", "denied by policy")
    with caplog.at_level(logging.INFO, logger="imm.reconciler"):
        reconciler.reconcile_once()
        assert cluster.names("ingresses", "imm-acme") == ["ep-two"]
        assert cluster.names("ingresses", "imm-beta") == ["ep-b"]
        assert _status(db, "acme", "ep-two")[0] == "running"
        assert _status(db, "beta", "ep-b")[0] == "running"
        failures = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert sorted(r.getMessage().split(" failed:")[0] for r in failures) == [
            "apply endpoint acme/ep-one",
            "apply tenant system",
        ]
        assert "denied by policy" in caplog.text
        assert all(r.exc_info for r in failures)

        # Only what failed is tried again; the same failure is logged without a traceback.
        caplog.clear()
        cluster.take_requests()
        reconciler.reconcile_once()
        applied = {r.target[2] for r in cluster.take_requests() if r.verb == "apply"}
        assert applied == {"ep-one"}  # its Deployment, Service and Ingress
        failures = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(failures) == 2 and not any(r.exc_info for r in failures)

        caplog.clear()
        cluster.allow("ingresses", "ep-one", "imm-acme")
        reconciler.reconcile_once()
        assert cluster.names("ingresses", "imm-acme") == ["ep-one", "ep-two"]
        assert "apply endpoint acme/ep-one succeeded again" in caplog.text
    assert _status(db, "acme", "ep-one")[0] == "running"


def test_what_the_database_no_longer_has_is_removed(
    reconciler: Reconciler, cluster: FakeKubeApiServer, db: Database
) -> None:
    _add(db, _tenant("acme"), _tenant("gone"))
    _add(db, _endpoint("acme", "ep-keep"), _endpoint("acme", "ep-drop"), _endpoint("gone", "ep-g"))
    reconciler.reconcile_once()
    assert cluster.names("deployments", "imm-acme") == ["ep-drop", "ep-keep"]
    with db.open() as session:  # as the API deletes: endpoints, then the tenant
        for key in (("acme", "ep-drop"), ("gone", "ep-g")):
            session.delete(session.get(Endpoint, key))
        session.delete(session.get(Tenant, "gone"))
        session.commit()
    # A refused deletion of one endpoint does not keep the tenant's namespace alive.
    cluster.refuse("ingresses", "ep-drop", "imm-acme")
    reconciler.reconcile_once()
    assert cluster.get("namespaces", "imm-gone") is None
    assert cluster.names("deployments", "imm-acme") == ["ep-drop", "ep-keep"]
    cluster.allow("ingresses", "ep-drop", "imm-acme")
    reconciler.reconcile_once()
    assert cluster.names("deployments", "imm-acme") == ["ep-keep"]
    assert cluster.names("ingresses", "imm-acme") == ["ep-keep"]
