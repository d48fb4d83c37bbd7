"""Quota and generation changes read the tenant's endpoints fresh once the tenant is locked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imm.api.quota import locked_tenant_endpoints
from imm.db.engine import Database
from imm.db.tables import Endpoint, Tenant


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'imm.db'}")
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


def test_rows_read_before_the_lock_are_refreshed(db: Database) -> None:
    with db.open() as setup:
        setup.add(Tenant(name="acme", scope="acme", ca_cert_pem="", quota={}))
        setup.flush()
        setup.add(
            Endpoint(
                tenant="acme", name="ep-one", subject_name="c", model_name="m",
                model_version=1, replicas=1, resources={}, generation=1,
            )
        )  # fmt: skip
        setup.commit()
    with db.open() as mine, db.open() as theirs:
        tenant = mine.get(Tenant, "acme")
        assert tenant is not None
        stale = mine.get(Endpoint, ("acme", "ep-one"))  # in this session's identity map
        assert stale is not None and stale.generation == 1
        row = theirs.get(Endpoint, ("acme", "ep-one"))
        assert row is not None
        row.generation = 2
        theirs.get(Tenant, "acme").quota = {"maxEndpoints": 5}  # type: ignore[union-attr]
        theirs.commit()
        endpoints = locked_tenant_endpoints(mine, tenant)
        assert endpoints["ep-one"] is stale
        assert stale.generation == 2
        assert tenant.quota == {"maxEndpoints": 5}
