"""Quota and generation changes read the tenant's endpoints fresh once the tenant is locked."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.platform import new_postgres_database

from imm.api.quota import locked_tenant_endpoints
from imm.db.engine import Database
from imm.db.tables import Endpoint, Tenant


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'imm.db'}"
    else:
        server = os.environ.get("IMM_TEST_POSTGRES_URL")
        if not server:
            pytest.skip("IMM_TEST_POSTGRES_URL not set (scripts/test starts a PostgreSQL)")
        url = new_postgres_database(server)
    database = Database(url)
    database.migrate()
    with database.open() as setup:
        setup.add(Tenant(name="acme", scope="acme", ca_cert_pem="", quota={}))
        setup.flush()
        setup.add(
            Endpoint(
                tenant="acme", name="ep-one", subject_name="c", model_name="m",
                model_version=1, replicas=1, resources={}, generation=1,
            )
        )  # fmt: skip
        setup.commit()
    try:
        yield database
    finally:
        database.dispose()


def test_rows_read_before_the_lock_are_refreshed(db: Database) -> None:
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


def test_a_second_change_waits_and_builds_on_the_first(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no row locks")
    seen: list[int] = []
    with db.open() as first:
        tenant = first.get(Tenant, "acme")
        assert tenant is not None
        row = locked_tenant_endpoints(first, tenant)["ep-one"]

        def second() -> None:
            with db.open() as session:
                other = session.get(Tenant, "acme")
                assert other is not None
                seen.append(locked_tenant_endpoints(session, other)["ep-one"].generation)

        waiter = threading.Thread(target=second)
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive(), "the tenant lock did not hold the second change back"
        row.generation += 1
        first.commit()
        waiter.join(10)
    assert seen == [2]
