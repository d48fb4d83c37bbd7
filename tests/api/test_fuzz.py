"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis):
no input a client can send yields a 5xx, and every error is problem+json."""

from __future__ import annotations

import schemathesis
from fixtures.pki import ca_pem
from fixtures.platform import Platform
from hypothesis import HealthCheck, given, settings


def test_no_input_yields_a_server_error(platform: Platform) -> None:
    with platform.client() as admin:
        # One real tenant, so generated requests can reach past the tenant lookup.
        admin.post("/tenants", json={"name": "fuzz", "cert": ca_pem(), "scope": "fuzz"})
    headers = {"Authorization": f"Bearer {platform.token('admin')}"}
    schema = schemathesis.openapi.from_url(f"{platform.url}/openapi.json")
    schema.config.update(base_url=platform.url)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def probe(case) -> None:  # type: ignore[no-untyped-def]
            if case.path_parameters and "tenant" in case.path_parameters:
                case.path_parameters["tenant"] = "fuzz"  # stay inside the test's own tenant
            response = case.call(headers=headers, timeout=30)
            where = f"{case.method} {case.formatted_path}"
            if response.status_code >= 500:
                failures.append(f"{where}: {response.status_code} {response.text[:200]}")
            elif response.status_code >= 400 and not case.path.startswith("/oidc"):
                kind = (response.headers.get("content-type") or [""])[0]
                if not kind.startswith("application/problem+json"):
                    failures.append(f"{where}: {response.status_code} answered as {kind}")

        probe()
    assert not failures, "\n".join(sorted(set(failures))[:20])
