"""Tenant administration through the real platform, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64

import pytest
from fixtures.pki import ca_pem, expired_ca_pem, leaf_pem
from fixtures.platform import Platform

QUOTA = {
    "requests.cpu": "500m",
    "limits.cpu": "2",
    "requests.memory": "512Mi",
    "limits.memory": "2Gi",
    "maxEndpoints": 3,
}


def tenant_body(name: str, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"name": name, "cert": ca_pem(), "scope": f"{name}-group"}
    body.update(overrides)
    return body


def tenant_names(platform: Platform) -> list[str]:
    with platform.client() as admin:
        return [t["name"] for t in admin.get("/tenants").json()]


def test_admin_creates_lists_views_and_deletes_a_tenant(db_platform: Platform) -> None:
    with db_platform.client() as admin:
        created = admin.post("/tenants", json=tenant_body("team-crud", quota=QUOTA))
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["name"] == "team-crud"
        assert body["scope"] == "team-crud-group"
        assert body["quota"] == QUOTA
        assert "BEGIN CERTIFICATE" in body["cert"]
        assert body["ca"]["subject"] == "CN=Test Tenant CA"

        assert "team-crud" in [t["name"] for t in admin.get("/tenants").json()]
        viewed = admin.get("/tenants/team-crud").json()
        assert viewed["quota"] == QUOTA
        assert viewed["usage"]["endpoints"] == 0

        assert admin.delete("/tenants/team-crud").status_code == 204
        assert admin.get("/tenants/team-crud").status_code == 404
        assert admin.delete("/tenants/team-crud").status_code == 404
    assert "team-crud" not in tenant_names(db_platform)


def test_cert_may_be_base64_of_pem(db_platform: Platform) -> None:
    pem = ca_pem("Base64 CA")
    encoded = base64.b64encode(pem.encode()).decode()
    with db_platform.client() as admin:
        response = admin.post("/tenants", json=tenant_body("team-b64", cert=encoded))
        assert response.status_code == 201, response.text
        assert response.json()["cert"].strip() == pem.strip()


INVALID = [
    ("name too short", {"name": "ab"}, "3 to 63"),
    ("name too long", {"name": "a" * 64}, "3 to 63"),
    ("name upper case", {"name": "Team-x"}, "lower-case"),
    ("name leading dash", {"name": "-team"}, "start and end"),
    ("name trailing dash", {"name": "team-"}, "start and end"),
    ("name with dot", {"name": "team.x"}, "lower-case"),
    ("name not a string", {"name": 123}, "name"),
    ("cert garbage", {"cert": "not a certificate"}, "PEM"),
    (
        "cert broken PEM",
        {"cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"},
        "parseable",
    ),
    ("cert not a CA", {"cert": "LEAF"}, "not a CA"),
    ("cert expired", {"cert": "EXPIRED"}, "expired"),
    ("cert empty", {"cert": ""}, "cert"),
    ("scope empty", {"scope": ""}, "scope"),
    ("scope blank", {"scope": "   "}, "scope"),
    ("quota unknown key", {"quota": {"gpus": "1"}}, "unknown quota key"),
    ("quota bad quantity", {"quota": {"limits.cpu": "two"}}, "not a Kubernetes quantity"),
    ("quota negative", {"quota": {"limits.memory": "-1Gi"}}, "negative"),
    (
        "quota limits below requests",
        {"quota": {"requests.cpu": "2", "limits.cpu": "1"}},
        "at least requests.cpu",
    ),
    (
        "quota memory limits below requests",
        {"quota": {"requests.memory": "1Gi", "limits.memory": "512Mi"}},
        "at least requests.memory",
    ),
    ("maxEndpoints zero", {"quota": {"maxEndpoints": 0}}, "maxEndpoints"),
    ("maxEndpoints fraction", {"quota": {"maxEndpoints": "1.5"}}, "maxEndpoints"),
    ("quota not an object", {"quota": ["limits.cpu"]}, "quota"),
    ("unknown field", {"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("case", "change", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_tenant_is_refused_with_400_and_nothing_stored(
    db_platform: Platform, case: str, change: dict[str, object], message: str
) -> None:
    body = tenant_body("team-invalid")
    body.update(change)
    if body.get("cert") == "LEAF":
        body["cert"] = leaf_pem()
    if body.get("cert") == "EXPIRED":
        body["cert"] = expired_ca_pem()
    with db_platform.client() as admin:
        response = admin.post("/tenants", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400
    assert message.lower() in problem["detail"].lower(), problem
    names = tenant_names(db_platform)
    assert "team-invalid" not in names
    assert body["name"] not in names


def test_missing_fields_are_named(db_platform: Platform) -> None:
    with db_platform.client() as admin:
        response = admin.post("/tenants", json={"name": "team-missing"})
    assert response.status_code == 400
    assert "cert is required" in response.json()["detail"]
    assert "scope is required" in response.json()["detail"]


def test_duplicate_tenant_is_409_and_the_original_is_unchanged(db_platform: Platform) -> None:
    with db_platform.client() as admin:
        first = admin.post("/tenants", json=tenant_body("team-dup", quota={"maxEndpoints": 2}))
        assert first.status_code == 201
        again = admin.post(
            "/tenants", json=tenant_body("team-dup", scope="other", quota={"maxEndpoints": 9})
        )
        assert again.status_code == 409
        assert "already exists" in again.json()["detail"]
        kept = admin.get("/tenants/team-dup").json()
    assert kept["scope"] == "team-dup-group"
    assert kept["quota"] == {"maxEndpoints": 2}
    assert kept["cert"] == first.json()["cert"]


def test_tenant_routes_check_who_is_asking(db_platform: Platform) -> None:
    with db_platform.client() as admin:
        for name in ("team-red", "team-blue"):
            assert admin.post("/tenants", json=tenant_body(name)).status_code == 201
    db_platform.add_user("alice", "team-red-group")
    db_platform.add_user("bob", "team-blue-group")

    with db_platform.client("alice") as alice:
        # Admin-only routes refuse a user.
        assert alice.get("/tenants").status_code == 403
        assert alice.post("/tenants", json=tenant_body("team-evil")).status_code == 403
        assert alice.delete("/tenants/team-blue").status_code == 403
        assert alice.delete("/tenants/team-red").status_code == 403
        # A member sees their own tenant ...
        own = alice.get("/tenants/team-red")
        assert own.status_code == 200
        assert own.json()["name"] == "team-red"
        # ... and learns nothing about another, nor whether an unknown one exists.
        other = alice.get("/tenants/team-blue")
        missing = alice.get("/tenants/team-nowhere")
        assert other.status_code == missing.status_code == 403
        assert "team-blue-group" not in other.text
        assert other.json()["detail"].replace("team-blue", "X") == missing.json()["detail"].replace(
            "team-nowhere", "X"
        )
        assert alice.get("/auth/whoami").json()["tenants"] == ["team-red"]

    with db_platform.client("bob") as bob:
        assert bob.get("/tenants/team-red").status_code == 403
        assert bob.get("/tenants/team-blue").status_code == 200
    assert {"team-red", "team-blue"} <= set(tenant_names(db_platform))


def test_tenants_survive_a_restart(db_platform: Platform) -> None:
    with db_platform.client() as admin:
        assert (
            admin.post("/tenants", json=tenant_body("team-durable", quota=QUOTA)).status_code == 201
        )
    db_platform.restart()
    with db_platform.client() as admin:
        kept = admin.get("/tenants/team-durable")
    assert kept.status_code == 200
    assert kept.json()["quota"] == QUOTA
