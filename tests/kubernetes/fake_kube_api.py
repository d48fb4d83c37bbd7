"""FakeKubeApiServer: a FAKE Kubernetes API server for the runtime's tests.

No cluster can run on a test machine, so this small HTTP server stands in for the API
server's few routes the kubernetes runtime uses: server-side apply (PATCH with
``application/apply-patch+yaml``), GET of one object, lists of events and pods, DELETE. It
records every request, stores applied objects (keeping their status, bumping
``metadata.generation`` when a spec changes, as the real one does), lets a test set a
Deployment's status and add Events and Pods, and answers errors with ``Status`` bodies.

It is deliberately NOT a faithful apply implementation: an apply replaces the stored object
with the applied one (field ownership and merging are not modelled), which is what a single
field manager that always sends the whole object observes on a real cluster.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

TOKEN = "fake-token"

# resource (URL plural) -> (apiVersion, kind, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "namespaces": ("v1", "Namespace", False),
    "resourcequotas": ("v1", "ResourceQuota", True),
    "secrets": ("v1", "Secret", True),
    "services": ("v1", "Service", True),
    "events": ("v1", "Event", True),
    "pods": ("v1", "Pod", True),
    "networkpolicies": ("networking.k8s.io/v1", "NetworkPolicy", True),
    "ingresses": ("networking.k8s.io/v1", "Ingress", True),
    "deployments": ("apps/v1", "Deployment", True),
}

Key = tuple[str, str | None, str]  # (resource, namespace, name)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any = None

    @property
    def verb(self) -> str:
        """``apply``, ``get``, ``list``, ``delete``: what the request meant."""
        if self.method == "PATCH":
            return "apply" if self.content_type == "application/apply-patch+yaml" else "patch"
        if self.method == "GET":
            return "get" if _route(self.path)[2] else "list"
        return self.method.lower()

    @property
    def target(self) -> Key:
        resource, namespace, name = _route(self.path)
        return resource, namespace, name or ""


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def _route(path: str) -> tuple[str, str | None, str | None]:
    """``/api/v1/namespaces/ns/secrets/x`` -> ("secrets", "ns", "x")."""
    parts = [p for p in urlsplit(path).path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        rest = parts[3:]
    else:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    else:
        namespace = None
    if not rest or rest[0] not in RESOURCES or len(rest) > 2:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")
    return rest[0], namespace, rest[1] if len(rest) == 2 else None


def _selector(text: str | None) -> dict[str, str]:
    """Equality selectors only (``a=b,c=d``): all the runtime sends."""
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",")]
    return {k.strip(): v.strip() for k, v in pairs}


def _field(obj: dict[str, Any], dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _rolled_out(deployment: dict[str, Any]) -> dict[str, Any]:
    """The status a finished rollout of ``deployment`` reports."""
    replicas = deployment["spec"].get("replicas", 1)
    return {
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            }
        ],
    }


@dataclass
class FakeKubeApiServer:
    """Start with ``start()``; point the client at ``write_kubeconfig()``."""

    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    # Play the deployment controller and kubelet of a healthy cluster: every applied
    # Deployment at once reports all its replicas updated, ready and available. For suites
    # that need endpoints to reach "running" without pods (e.g. the API-level tests).
    instant_rollouts: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._httpd: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeKubeApiServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                fake._serve(self)

            do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- test controls --------------------------------------------------------------------

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        with self._lock:
            obj = self.objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def put(self, resource: str, obj: dict[str, Any]) -> None:
        """Store an object as the cluster itself would create it (a Pod, an Event, a Secret)."""
        meta = obj.setdefault("metadata", {})
        api_version, kind, _ = RESOURCES[resource]
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", kind)
        with self._lock:
            self._stamp(meta, None)
            self.objects[(resource, meta.get("namespace"), meta["name"])] = copy.deepcopy(obj)

    def set_status(self, resource: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """What a controller would write: e.g. a Deployment's replica counts and conditions."""
        with self._lock:
            self.objects[(resource, namespace, name)]["status"] = copy.deepcopy(status)

    def names(self, resource: str, namespace: str | None = None) -> list[str]:
        with self._lock:
            return sorted(n for (r, ns, n) in self.objects if r == resource and ns == namespace)

    def take_requests(self) -> list[Recorded]:
        """The requests since the last call, oldest first."""
        with self._lock:
            taken, self.requests = self.requests, []
        return taken

    # -- the API --------------------------------------------------------------------------

    def _stamp(self, meta: dict[str, Any], existing: dict[str, Any] | None) -> None:
        self._version += 1
        old = (existing or {}).get("metadata", {})
        meta["uid"] = old.get("uid") or str(uuid.uuid4())
        meta["creationTimestamp"] = old.get("creationTimestamp") or "2026-01-01T00:00:00Z"
        meta["resourceVersion"] = str(self._version)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        content_type = handler.headers.get("Content-Type")
        recorded = Recorded(handler.command, url.path, query, content_type)
        try:
            if raw:
                recorded.body = yaml.safe_load(raw)
            with self._lock:
                self.requests.append(recorded)
                if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
                    raise ApiError(401, "Unauthorized", "Unauthorized")
                code, body = self._dispatch(recorded)
        except ApiError as exc:
            code, body = exc.code, exc.status()
        except yaml.YAMLError as exc:
            code, body = 400, ApiError(400, "BadRequest", f"bad body: {exc}").status()
        data = json.dumps(body).encode()
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _dispatch(self, req: Recorded) -> tuple[int, dict[str, Any]]:
        resource, namespace, name = _route(req.path)
        if req.method == "GET" and name is None:
            return 200, self._list(resource, namespace, req.query)
        if name is None:
            raise ApiError(405, "MethodNotAllowed", f"{req.method} on a collection")
        key = (resource, namespace, name)
        if req.method == "GET":
            if key not in self.objects:
                raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
            return 200, copy.deepcopy(self.objects[key])
        if req.method == "PATCH":
            return self._apply(key, req)
        if req.method == "DELETE":
            return self._delete(key)
        raise ApiError(405, "MethodNotAllowed", f"{req.method} is not served by this fake")

    def _apply(self, key: Key, req: Recorded) -> tuple[int, dict[str, Any]]:
        resource, namespace, name = key
        if req.content_type != "application/apply-patch+yaml":
            raise ApiError(415, "UnsupportedMediaType", f"not an apply: {req.content_type}")
        if not req.query.get("fieldManager"):
            raise ApiError(400, "BadRequest", "fieldManager is required for apply patch")
        body = req.body
        api_version, kind, namespaced = RESOURCES[resource]
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "apply body must be an object")
        if (body.get("apiVersion"), body.get("kind")) != (api_version, kind):
            raise ApiError(400, "BadRequest", f"expected {api_version} {kind} at {req.path}")
        meta = body.get("metadata") or {}
        if meta.get("name") != name or meta.get("namespace", namespace) != namespace:
            raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        if namespaced and ("namespaces", None, namespace) not in self.objects:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found')
        existing = self.objects.get(key)
        stored = copy.deepcopy(body)
        stored["metadata"]["namespace"] = namespace
        if not namespaced:
            stored["metadata"].pop("namespace", None)
        self._stamp(stored["metadata"], existing)
        old_generation = (existing or {}).get("metadata", {}).get("generation", 0)
        spec_changed = existing is None or existing.get("spec") != stored.get("spec")
        stored["metadata"]["generation"] = old_generation + 1 if spec_changed else old_generation
        if existing is not None and "status" in existing:
            stored["status"] = existing["status"]
        if self.instant_rollouts and resource == "deployments":
            stored["status"] = _rolled_out(stored)
        self.objects[key] = stored
        return (200 if existing else 201), copy.deepcopy(stored)

    def _delete(self, key: Key) -> tuple[int, dict[str, Any]]:
        """Answers with the object being deleted, as the API server does for these kinds."""
        resource, _, name = key
        if key not in self.objects:
            raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
        # A real server keeps the object (deletionTimestamp set) until the garbage collector
        # or namespace controller is done; the fake finishes at once but answers alike.
        gone = self.objects.pop(key)
        gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z"
        if resource == "namespaces":
            for other in [k for k in self.objects if k[1] == name]:
                del self.objects[other]
        return 200, gone

    def _list(self, resource: str, namespace: str | None, query: dict[str, str]) -> dict[str, Any]:
        labels = _selector(query.get("labelSelector"))
        fields = _selector(query.get("fieldSelector"))
        items = [
            copy.deepcopy(obj)
            for (r, ns, _), obj in sorted(self.objects.items(), key=lambda kv: str(kv[0]))
            if r == resource
            and (namespace is None or ns == namespace)
            and all(obj["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())
            and all(_field(obj, k) == v for k, v in fields.items())
        ]
        api_version, kind, _ = RESOURCES[resource]
        return {
            "apiVersion": api_version,
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }
