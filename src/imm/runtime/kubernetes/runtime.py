"""The kubernetes runtime: the Runtime protocol over a cluster's API server.

Every call renders the whole desired state and server-side applies it, so the reconciler may
call ``apply_*`` as often as it likes (after every change and on every resync); nothing here
keeps state between calls, and the cluster's own controllers do the rolling, restarting and
quota enforcement that the local runtime does itself.
"""

from __future__ import annotations

import base64
import logging
import threading

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from imm.config import Settings
from imm.domain.errors import InvalidInput
from imm.runtime.base import EndpointObservation, EndpointSpec, TenantSpec
from imm.runtime.kubernetes import inventory, names, render, status
from imm.runtime.kubernetes.apply import Applier, ClusterError, api_message
from imm.runtime.kubernetes.client import make_api_client
from imm.runtime.kubernetes.settings import KubernetesSettings, StoreAccess

log = logging.getLogger(__name__)
STARTUP_CHECK_SECONDS = 5.0


class KubernetesRuntime:
    """Tenants as namespaces, endpoints as Deployment + Service + Ingress (ingress-nginx)."""

    def __init__(
        self,
        settings: KubernetesSettings,
        store: StoreAccess,
        api_client: client.ApiClient | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.api_client = api_client or make_api_client(settings)
        self.applier = Applier(self.api_client, settings.request_timeout_seconds)

    @classmethod
    def from_settings(
        cls, settings: Settings, k8s: KubernetesSettings | None = None
    ) -> KubernetesRuntime:
        """Model servers on a cluster read models from S3: a filesystem store cannot work."""
        if not (
            settings.uses_s3
            and settings.s3_endpoint
            and settings.s3_access_key
            and settings.s3_secret_key
        ):
            raise ValueError(
                "IMM_RUNTIME=kubernetes needs IMM_STORE=s3 with IMM_S3_ENDPOINT, "
                "IMM_S3_ACCESS_KEY and IMM_S3_SECRET_KEY: model servers read models from S3"
            )
        store = StoreAccess(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            region=settings.s3_region,
            bucket_prefix=settings.s3_bucket_prefix,
        )
        return cls(k8s or KubernetesSettings.from_settings(settings), store)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Says early whether the cluster answers, in the background: an unreachable API
        server can take the client's retries times the timeout to fail, and ``imm up`` must
        serve the API meanwhile (the reconciler retries every call anyway)."""
        threading.Thread(target=self.check_cluster, name="k8s-check", daemon=True).start()

    def check_cluster(self) -> bool:
        """One cheap call the runtime needs anyway (list tenant namespaces); logs its outcome."""
        server = self.api_client.configuration.host
        try:
            tenants = self._tenant_namespaces(
                min(STARTUP_CHECK_SECONDS, self.settings.request_timeout_seconds)
            )
        except Exception as exc:  # only news, never fatal
            log.warning("kubernetes API server %s not usable yet: %s", server, exc)
            return False
        log.info("kubernetes API server %s: %d tenant namespaces", server, len(tenants))
        return True

    def stop(self) -> None:
        """Nothing runs here: the cluster keeps serving the endpoints without the API."""
        self.close()

    def close(self) -> None:
        self.api_client.close()

    @property
    def _reserved(self) -> set[str]:
        return {self.settings.platform_namespace, self.settings.ingress_namespace}

    def namespace(self, tenant: str) -> str:
        """The tenant's namespace; never the platform's or the ingress controller's (with the
        default prefix, a tenant named ``system`` would otherwise own ``imm-system``)."""
        ns = names.namespace(self.settings.namespace_prefix, tenant)
        if ns in self._reserved:
            raise InvalidInput(
                f"tenant name {tenant!r} is reserved on this cluster: "
                f"namespace {ns} belongs to the platform"
            )
        return ns

    # -- tenants ----------------------------------------------------------------------------

    def list_tenants(self) -> set[str]:
        return self._tenant_namespaces(self.settings.request_timeout_seconds)

    def _tenant_namespaces(self, timeout: float) -> set[str]:
        return inventory.tenant_namespaces(
            self.applier.api(client.CoreV1Api),
            self.settings.namespace_prefix,
            self._reserved,
            timeout,
        )

    def apply_tenant(self, spec: TenantSpec) -> None:
        self.namespace(spec.name)
        self.applier.apply_all(
            render.render_tenant(spec, self.settings, self.store, self._platform_tls())
        )

    def delete_tenant(self, name: str) -> None:
        """Deleting the namespace deletes everything in it; the cluster finishes it later."""
        self.applier.delete("Namespace", self.namespace(name))

    def _platform_tls(self) -> render.TlsMaterial | None:
        """The platform certificate to copy into tenant namespaces (Ingress TLS secrets must
        live beside the Ingress); None leaves Ingresses to the controller's default one."""
        if not self.settings.tls_secret:
            return None
        core = self.applier.api(client.CoreV1Api)
        try:
            secret = core.read_namespaced_secret(
                self.settings.tls_secret,
                self.settings.platform_namespace,
                _request_timeout=self.settings.request_timeout_seconds,
            )
        except ApiException as exc:
            if exc.status == 404:
                log.warning(
                    "TLS secret %s/%s not found; endpoints get the ingress default certificate",
                    self.settings.platform_namespace,
                    self.settings.tls_secret,
                )
                return None
            raise ClusterError("read platform TLS secret", exc.status, api_message(exc)) from None
        data = secret.data or {}
        if "tls.crt" not in data or "tls.key" not in data:
            raise ClusterError("read platform TLS secret", None, "it must hold tls.crt and tls.key")
        return render.TlsMaterial(
            crt=base64.b64decode(data["tls.crt"]), key=base64.b64decode(data["tls.key"])
        )

    # -- endpoints --------------------------------------------------------------------------

    def list_endpoints(self) -> set[tuple[str, str]]:
        return inventory.endpoint_deployments(
            self.applier.api(client.AppsV1Api),
            self.settings.namespace_prefix,
            self._reserved,
            self.settings.request_timeout_seconds,
        )

    def apply_endpoint(self, spec: EndpointSpec) -> None:
        """Creates, updates (a changed model or version rolls the pods) or scales (0 too)."""
        self.namespace(spec.tenant)
        if not spec.host:
            raise InvalidInput(f"endpoint {spec.tenant}/{spec.name} has no host name")
        self.applier.apply_all(render.render_endpoint(spec, self.settings, self.store))

    def delete_endpoint(self, tenant: str, name: str) -> None:
        """Routing goes first, so no call reaches a pod that is being removed."""
        ns = self.namespace(tenant)
        self.applier.delete("Ingress", names.ingress(name), ns)
        self.applier.delete("Service", names.service(name), ns)
        self.applier.delete("Deployment", names.deployment(name), ns)

    def observe_endpoint(self, tenant: str, name: str) -> EndpointObservation | None:
        ns = self.namespace(tenant)
        timeout = self.settings.request_timeout_seconds
        apps = self.applier.api(client.AppsV1Api)
        try:
            deployment = apps.read_namespaced_deployment(
                names.deployment(name), ns, _request_timeout=timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ClusterError(
                f"read Deployment {ns}/{name}", exc.status, api_message(exc)
            ) from None
        if status.settled(deployment):
            return status.observe(deployment)
        core = self.applier.api(client.CoreV1Api)
        try:
            events = core.list_namespaced_event(
                ns,
                field_selector="involvedObject.kind=ReplicaSet,type=Warning",
                _request_timeout=timeout,
            ).items
            pods = core.list_namespaced_pod(
                ns,
                label_selector=",".join(
                    f"{k}={v}" for k, v in names.selector(tenant, name).items()
                ),
                _request_timeout=timeout,
            ).items
        except ApiException as exc:
            raise ClusterError(f"observe {ns}/{name}", exc.status, api_message(exc)) from None
        return status.observe(deployment, events, pods, self.settings.crash_restarts)
