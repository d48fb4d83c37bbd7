"""Python SDK over the management API; the CLI is built on it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import httpx


class ApiError(Exception):
    """A problem+json answer from the API (or a transport failure, with status 0)."""

    def __init__(self, status: int, detail: str, title: str = "") -> None:
        super().__init__(f"{status} {title}: {detail}" if status else detail)
        self.status = status
        self.detail = detail
        self.title = title


TokenProvider = Callable[[bool], str | None]  # force_refresh -> token


class Client:
    """Talks to one IMM API as one user; ``token`` may refresh itself on a 401."""

    def __init__(
        self,
        api_url: str,
        token: TokenProvider | str | None = None,
        timeout: float = 60.0,
        verify: bool | str = True,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token: TokenProvider = token if callable(token) else (lambda _f, t=token: t)
        self.http = httpx.Client(base_url=self.api_url, timeout=timeout, verify=verify)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in (0, 1):
            token = self._token(attempt == 1)
            headers = dict(kwargs.pop("headers", None) or {})
            if token:
                headers["Authorization"] = f"Bearer {token}"
            try:
                response = self.http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                raise ApiError(0, f"cannot reach the IMM API at {self.api_url}: {exc}") from exc
            if response.status_code == 401 and attempt == 0 and token:
                kwargs["headers"] = headers
                continue
            break
        if response.status_code >= 400:
            raise _error(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    # auth
    def auth_config(self) -> dict[str, Any]:
        return self.json("GET", "/auth/config")

    def whoami(self) -> dict[str, Any]:
        return self.json("GET", "/auth/whoami")

    # ingress
    def ingress_ca(self) -> bytes:
        """The platform CA (PEM) that signs the ingress's server certificate."""
        return self.request("GET", "/ingress/ca.crt").content

    # tenants
    def create_tenant(
        self, name: str, cert: str, scope: str, quota: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "cert": cert, "scope": scope, "quota": quota or {}}
        return self.json("POST", "/tenants", json=body)

    def list_tenants(self) -> list[dict[str, Any]]:
        return self.json("GET", "/tenants")

    def get_tenant(self, name: str) -> dict[str, Any]:
        return self.json("GET", f"/tenants/{seg(name)}")

    def delete_tenant(self, name: str) -> None:
        self.request("DELETE", f"/tenants/{seg(name)}")

    # models
    def list_models(self, tenant: str) -> list[dict[str, Any]]:
        return self.json("GET", f"/tenants/{seg(tenant)}/models")

    def get_model(self, tenant: str, model: str) -> dict[str, Any]:
        return self.json("GET", f"/tenants/{seg(tenant)}/models/{seg(model)}")

    def delete_model_version(self, tenant: str, model: str, version: int) -> None:
        self.request(
            "DELETE", f"/tenants/{seg(tenant)}/models/{seg(model)}/versions/{seg(str(version))}"
        )

    # uploads
    def upload_start(
        self,
        tenant: str,
        model: str,
        version: int,
        file_name: str,
        key: str | None = None,
        part_size: int | None = None,
    ) -> str:
        body: dict[str, Any] = {"modelName": model, "modelVersion": version, "fileName": file_name}
        if key:
            body["key"] = key
        if part_size:
            body["partSize"] = part_size
        return self.json("POST", f"/tenants/{seg(tenant)}/upload/start", json=body)["uploadId"]

    def upload_part(
        self,
        tenant: str,
        upload_id: str,
        number: int,
        data: bytes | Iterable[bytes],
        md5_b64: str | None = None,
        size: int | None = None,
        crc32_b64: str | None = None,
    ) -> dict[str, Any]:
        """``data`` may be an iterable of chunks (streamed); pass ``size`` with it so the
        server can refuse an over-size part before reading it. The server checks each
        checksum given (Content-MD5, x-amz-checksum-crc32) and keeps nothing on a mismatch."""
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        if md5_b64:
            headers["Content-MD5"] = md5_b64
        if crc32_b64:
            headers["x-amz-checksum-crc32"] = crc32_b64
        return self.json(
            "PUT",
            f"/tenants/{seg(tenant)}/upload",
            params={"uploadId": upload_id, "partNumber": number},
            content=data,
            headers=headers,
        )

    def upload_status(self, tenant: str, upload_id: str) -> dict[str, Any]:
        return self.json("GET", f"/tenants/{seg(tenant)}/upload/{seg(upload_id)}")

    def upload_done(
        self, tenant: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> dict[str, Any]:
        body = {"uploadId": upload_id, "parts": [{"PartNumber": n, "ETag": e} for n, e in parts]}
        return self.json("POST", f"/tenants/{seg(tenant)}/upload/done", json=body)

    def upload_abort(self, tenant: str, upload_id: str) -> None:
        self.json("POST", f"/tenants/{seg(tenant)}/upload/abort", json={"uploadId": upload_id})

    # endpoints
    def create_endpoint(
        self,
        tenant: str,
        name: str,
        subject_name: str,
        model: str,
        version: int,
        replicas: int = 1,
        resources: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "endpointName": name,
            "subjectName": subject_name,
            "modelName": model,
            "modelVersion": version,
            "replicas": replicas,
            "resources": resources or {},
        }
        return self.json("POST", f"/tenants/{seg(tenant)}/endpoints", json=body)

    def list_endpoints(self, tenant: str) -> list[dict[str, Any]]:
        return self.json("GET", f"/tenants/{seg(tenant)}/endpoints")

    def get_endpoint(self, tenant: str, name: str) -> dict[str, Any]:
        return self.json("GET", f"/tenants/{seg(tenant)}/endpoints/{seg(name)}")

    def update_endpoint(self, tenant: str, name: str, **changes: Any) -> dict[str, Any]:
        """``changes``: any of modelName, modelVersion, subjectName, resources."""
        return self.json("PATCH", f"/tenants/{seg(tenant)}/endpoints/{seg(name)}", json=changes)

    def scale_endpoint(self, tenant: str, name: str, replicas: int) -> dict[str, Any]:
        return self.json(
            "PATCH",
            f"/tenants/{seg(tenant)}/endpoints/{seg(name)}/replicas",
            json={"replicas": replicas},
        )

    def delete_endpoint(self, tenant: str, name: str) -> None:
        self.request("DELETE", f"/tenants/{seg(tenant)}/endpoints/{seg(name)}")


def seg(value: str) -> str:
    """One path segment, escaped, so a name can never change the route it goes to."""
    return quote(str(value), safe="")


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail") or body.get("error_description") or response.text[:200]
    return ApiError(response.status_code, str(detail), str(body.get("title", "")))
