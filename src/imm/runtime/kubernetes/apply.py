"""Server-side apply and deletion of rendered manifests, one kind-to-API table for both.

Apply is ``PATCH`` with ``application/apply-patch+yaml``, field manager ``imm`` and
``force=true``: the runtime owns every field it renders, a rerun is a no-op, and a field
dropped from the rendering is removed from the object. Deletion propagates in the foreground
so an endpoint's pods are gone before its Deployment is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from imm.runtime.kubernetes.names import FIELD_MANAGER

APPLY_PATCH = "application/apply-patch+yaml"

# kind -> (API group client, snake_case resource name used by the client's method names,
#          namespaced)
KINDS: dict[str, tuple[type, str, bool]] = {
    "Namespace": (client.CoreV1Api, "namespace", False),
    "ResourceQuota": (client.CoreV1Api, "resource_quota", True),
    "Secret": (client.CoreV1Api, "secret", True),
    "Service": (client.CoreV1Api, "service", True),
    "NetworkPolicy": (client.NetworkingV1Api, "network_policy", True),
    "Ingress": (client.NetworkingV1Api, "ingress", True),
    "Deployment": (client.AppsV1Api, "deployment", True),
}


class ClusterError(RuntimeError):
    """The API server refused a call; carries its HTTP status and its own message."""

    def __init__(self, action: str, status: int | None, message: str) -> None:
        super().__init__(f"{action}: {message} (HTTP {status})")
        self.status = status
        self.message = message


def api_message(exc: ApiException) -> str:
    """The ``message`` of the API server's Status body, else whatever it said."""
    try:
        body = json.loads(exc.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    return str(exc.reason or exc.body or "no message")


def _drain(response: Any) -> None:
    """Apply and delete answer with the object; nothing here needs it, and not decoding it
    into the client's models keeps a newer server's extra fields from failing a call that
    succeeded (non-2xx answers still raise ApiException)."""
    response.read()
    response.release_conn()


class Applier:
    """Applies and deletes manifests through the typed APIs of one ``ApiClient``."""

    def __init__(self, api_client: client.ApiClient, timeout: float = 30.0) -> None:
        self.api_client = api_client
        self.timeout = timeout
        self._apis: dict[type, Any] = {}

    def api(self, api_type: type) -> Any:
        if api_type not in self._apis:
            self._apis[api_type] = api_type(self.api_client)
        return self._apis[api_type]

    def _method(self, verb: str, kind: str) -> tuple[Callable[..., Any], bool]:
        api_type, resource, namespaced = KINDS[kind]
        name = f"{verb}_namespaced_{resource}" if namespaced else f"{verb}_{resource}"
        return getattr(self.api(api_type), name), namespaced

    def apply(self, manifest: dict[str, Any]) -> None:
        kind, meta = manifest["kind"], manifest["metadata"]
        method, namespaced = self._method("patch", kind)
        target = (meta["name"], meta["namespace"]) if namespaced else (meta["name"],)
        try:
            _drain(
                method(
                    *target,
                    body=manifest,
                    field_manager=FIELD_MANAGER,
                    force=True,
                    _content_type=APPLY_PATCH,
                    _request_timeout=self.timeout,
                    _preload_content=False,
                )
            )
        except ApiException as exc:
            where = "/".join(reversed(target))
            raise ClusterError(f"apply {kind} {where}", exc.status, api_message(exc)) from None

    def apply_all(self, manifests: list[dict[str, Any]]) -> None:
        for manifest in manifests:
            self.apply(manifest)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """Foreground deletion; False when there was nothing to delete."""
        method, namespaced = self._method("delete", kind)
        target = (name, namespace) if namespaced else (name,)
        try:
            _drain(
                method(
                    *target,
                    propagation_policy="Foreground",
                    _request_timeout=self.timeout,
                    _preload_content=False,
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            where = "/".join(str(part) for part in reversed(target))
            raise ClusterError(f"delete {kind} {where}", exc.status, api_message(exc)) from None
        return True
