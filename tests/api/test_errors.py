"""Every error is problem+json with the right status; nothing a client sends yields a 500."""

from __future__ import annotations

import httpx
import pytest
from fixtures.platform import Platform


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


def test_unknown_route_is_404(platform: Platform) -> None:
    with platform.client() as admin:
        body = assert_problem(admin.get("/no/such/route"), 404)
    assert "/no/such/route" in body["detail"]


def test_wrong_method_is_405(platform: Platform) -> None:
    with platform.client() as admin:
        body = assert_problem(admin.put("/tenants"), 405)
    assert "PUT" in body["detail"]


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"", b"[1, 2", b"\xff\xfe\x00", b'{"name": "x"'],
    ids=["garbage", "empty", "truncated array", "binary", "truncated object"],
)
def test_malformed_json_is_400(platform: Platform, payload: bytes) -> None:
    with platform.client() as admin:
        response = admin.post(
            "/tenants", content=payload, headers={"Content-Type": "application/json"}
        )
    assert_problem(response, 400)


@pytest.mark.parametrize("payload", ["[]", "42", '"text"', "null"])
def test_json_of_the_wrong_shape_is_400(platform: Platform, payload: str) -> None:
    with platform.client() as admin:
        response = admin.post(
            "/tenants", content=payload, headers={"Content-Type": "application/json"}
        )
    assert_problem(response, 400)


def test_oversize_body_is_413(platform: Platform) -> None:
    big = b'{"name": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    with platform.client() as admin:
        assert_problem(
            admin.post("/tenants", content=big, headers={"Content-Type": "application/json"}), 413
        )

        def chunks():  # no Content-Length: the limit must hold for a streamed body too
            yield b'{"name": "'
            for _ in range(40):
                yield b"a" * 65536
            yield b'"}'

        assert_problem(
            admin.post("/tenants", content=chunks(), headers={"Content-Type": "application/json"}),
            413,
        )
        # The server is still fine afterwards.
        assert admin.get("/tenants").status_code == 200


@pytest.mark.parametrize(
    "path", ["/tenants/UPPER", "/tenants/a", "/tenants/" + "x" * 80, "/tenants/bad_name"]
)
def test_invalid_tenant_name_in_path_is_400(platform: Platform, path: str) -> None:
    with platform.client() as admin:
        assert_problem(admin.get(path), 400)
        assert_problem(admin.delete(path), 400)


def test_openapi_document_describes_the_real_contract(platform: Platform) -> None:
    doc = httpx.get(f"{platform.url}/openapi.json").json()
    assert doc["info"]["title"] == "IMM management API"
    assert {"/tenants", "/tenants/{tenant}", "/healthz", "/auth/config"} <= set(doc["paths"])
    create = doc["components"]["schemas"]["TenantCreate"]
    assert set(create["required"]) == {"name", "cert", "scope"}
    assert create["properties"]["name"]["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    assert create["additionalProperties"] is False
    docs = httpx.get(f"{platform.url}/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
