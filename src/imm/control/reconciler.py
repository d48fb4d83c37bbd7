"""Level-triggered reconciliation, in the manner of a Kubernetes operator.

Each pass reads the whole desired state, applies to the runtime what changed since it was
last applied (and everything again now and then, in case the runtime drifted), removes what
the runtime holds but the database no longer wants, and writes what it observes back as
endpoint status. The API nudges it after every change; a timer covers the rest (replicas
becoming ready, crashing, restarting).

A failing runtime call (a cluster refusing one object, an unreachable API server) fails only
its own item: the others are still applied, removed and observed, and the failed one is
tried again on the next pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import select

from imm.config import Settings
from imm.db.engine import Database
from imm.db.tables import Endpoint, Tenant
from imm.domain.names import endpoint_host
from imm.runtime.base import EndpointObservation, EndpointSpec, Runtime, TenantSpec

log = logging.getLogger("imm.reconciler")

# What a runtime call is about, e.g. ("apply endpoint", "acme", "demo"): the key of its
# failures, logged as "apply endpoint acme/demo".
Item = tuple[str, ...]


def describe(item: Item) -> str:
    what, *names = item
    return f"{what} {'/'.join(names)}" if names else what


def tenant_spec(row: Tenant) -> TenantSpec:
    return TenantSpec(name=row.name, scope=row.scope, ca_pem=row.ca_cert_pem, quota=row.quota)


def endpoint_spec(row: Endpoint, settings: Settings) -> EndpointSpec:
    return EndpointSpec(
        tenant=row.tenant,
        name=row.name,
        subject_name=row.subject_name,
        model_name=row.model_name,
        model_version=row.model_version,
        replicas=row.replicas,
        resources=dict(row.resources),
        host=endpoint_host(row.name, row.tenant, settings.domain),
    )


class Reconciler:
    def __init__(
        self,
        db: Database,
        runtime: Runtime,
        settings: Settings,
        interval: float = 1.0,
        resync: float = 60.0,
    ) -> None:
        self.db = db
        self.runtime = runtime
        self.settings = settings
        self.interval = interval
        self.resync = resync
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)
        self._applied_tenants: dict[str, TenantSpec] = {}
        self._applied: dict[tuple[str, str], EndpointSpec] = {}
        self._last_resync = 0.0
        self._failing: dict[Item, str] = {}  # item -> its last error, to log each change once

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def nudge(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile_once()
            except Exception:
                log.exception("reconcile pass failed; retrying")
            self._wake.wait(self.interval)
            self._wake.clear()

    def reconcile_once(self) -> None:
        with self.db.open() as session:
            tenants = [tenant_spec(t) for t in session.scalars(select(Tenant)).all()]
            rows = session.scalars(select(Endpoint)).all()
            endpoints = [endpoint_spec(e, self.settings) for e in rows]
            generations = {(e.tenant, e.name): e.generation for e in rows}
        resync = time.monotonic() - self._last_resync > self.resync
        if resync:
            self._last_resync = time.monotonic()

        # Tenants first: a new tenant's endpoints need its namespace (or CA) to exist.
        wanted_tenants = {t.name for t in tenants}
        for spec in tenants:
            stale = resync or self._applied_tenants.get(spec.name) != spec
            if stale and self._attempt(
                ("apply tenant", spec.name), self.runtime.apply_tenant, spec
            ):
                self._applied_tenants[spec.name] = spec
        wanted = {(e.tenant, e.name) for e in endpoints}
        for spec in endpoints:
            key = (spec.tenant, spec.name)
            stale = resync or self._applied.get(key) != spec
            if stale and self._attempt(("apply endpoint", *key), self.runtime.apply_endpoint, spec):
                self._applied[key] = spec
        held: set[tuple[str, str]] = set()
        if self._attempt(("list endpoints",), lambda: held.update(self.runtime.list_endpoints())):
            for key in sorted(held - wanted):
                log.info("removing endpoint %s/%s", *key)
                if self._attempt(("delete endpoint", *key), self.runtime.delete_endpoint, *key):
                    self._applied.pop(key, None)
        held_tenants: set[str] = set()
        if self._attempt(
            ("list tenants",), lambda: held_tenants.update(self.runtime.list_tenants())
        ):
            for name in sorted(held_tenants - wanted_tenants):
                log.info("removing tenant %s", name)
                if self._attempt(("delete tenant", name), self.runtime.delete_tenant, name):
                    self._applied_tenants.pop(name, None)
        self._write_status(endpoints, generations)

    def _attempt(self, item: Item, call: Callable[..., object], *args: object) -> bool:
        """``call(*args)``; False after logging why it failed. A failure that repeats is
        logged again without its traceback, so one broken item cannot flood the log."""
        try:
            call(*args)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            repeated = self._failing.get(item) == error
            self._failing[item] = error
            log.error("%s failed: %s", describe(item), error, exc_info=not repeated)
            return False
        if self._failing.pop(item, None) is not None:
            log.info("%s succeeded again", describe(item))
        return True

    def _apply_error(self, spec: EndpointSpec) -> str | None:
        """Why the runtime would not take this endpoint (or its tenant), if it would not."""
        return self._failing.get(("apply endpoint", spec.tenant, spec.name)) or self._failing.get(
            ("apply tenant", spec.tenant)
        )

    def _write_status(
        self, endpoints: list[EndpointSpec], generations: dict[tuple[str, str], int]
    ) -> None:
        """``generations``: of the rows ``endpoints`` were built from in this pass."""
        refused = {
            (spec.tenant, spec.name): error
            for spec in endpoints
            if (error := self._apply_error(spec)) is not None
        }
        observed: dict[tuple[str, str], EndpointObservation] = {}
        # The runtime holds what it was last given: observed_generation may say so.
        current: set[tuple[str, str]] = set()
        for spec in endpoints:
            key = (spec.tenant, spec.name)
            if self._applied.get(key) == spec:
                current.add(key)

            def observe(key: tuple[str, str] = key) -> None:
                seen = self.runtime.observe_endpoint(*key)
                if seen is not None:
                    observed[key] = seen

            self._attempt(("observe endpoint", *key), observe)
        if not observed and not refused:
            return
        with self.db.open() as session:
            rows = {(r.tenant, r.name): r for r in session.scalars(select(Endpoint))}
            for key, error in refused.items():
                # Shown to the user: a runtime that refuses the spec is no transient state.
                row = rows.get(key)
                if row is not None and key not in observed:
                    row.status = "failed"
                    row.last_error = f"the runtime refused the endpoint: {error}"[:2000]
            for key, seen in observed.items():
                row = rows.get(key)
                if row is None or seen.desired_replicas != row.replicas:
                    continue  # changed meanwhile: the next pass observes the new spec
                row.status = seen.status
                row.ready_replicas = seen.ready_replicas
                row.updated_replicas = seen.updated_replicas
                row.last_error = seen.last_error
                if key in refused:
                    row.last_error = f"the runtime refused the change: {refused[key]}"
                row.limits_enforced = seen.limits_enforced
                if key in current:
                    row.observed_generation = generations[key]
            session.commit()
