"""Python SDK over the management API; the CLI is built on it."""

from __future__ import annotations

from collections.abc import Callable
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
