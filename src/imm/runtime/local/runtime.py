"""The local runtime: replicas are processes on this machine, the ingress is nginx."""

from __future__ import annotations

import logging
import threading

from imm.config import Settings
from imm.domain.quantities import parse
from imm.runtime.base import EndpointObservation, EndpointSpec, TenantSpec
from imm.runtime.local.cgroups import Cgroups, Limits
from imm.runtime.local.ingress import Ingress
from imm.runtime.local.pki import PlatformPki
from imm.runtime.local.replica import ReplicaCommand, stop_survivors
from imm.runtime.local.supervisor import Supervisor
from imm.runtime.serving_args import intra_op_threads

log = logging.getLogger("imm.runtime.local")


def limits_of(resources: dict[str, str]) -> Limits:
    cpu = resources.get("limits.cpu")
    memory = resources.get("limits.memory")
    return Limits(
        cpu=parse(cpu, "limits.cpu") if cpu else None,
        memory=int(parse(memory, "limits.memory")) if memory else None,
    )


class LocalRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        data = settings.data_dir.resolve()
        self.work_dir = data / "runtime"
        self.pki = PlatformPki(settings.platform_ca_path.parent.resolve(), settings.domain)
        self.ingress = Ingress(
            settings.ingress_host_port, settings.domain, data / "ingress", self.pki
        )
        self.cgroups = Cgroups()
        self._tenants: dict[str, TenantSpec] = {}
        self._lock = threading.Lock()
        self.supervisor = Supervisor(
            ingress=self.ingress,
            make_command=self._command,
            log_dir=self.work_dir / "logs",
            pid_file=self.work_dir / "replicas.pid",
            cgroups=self.cgroups,
            tenant_ca=self._tenant_ca,
        )

    def start(self) -> None:
        stop_survivors(self.work_dir / "replicas.pid", self.settings.data_dir.resolve())
        self.ingress.start()  # with no routes; the supervisor's first tick applies them
        self.supervisor.start()

    def stop(self) -> None:
        self.supervisor.shutdown()
        self.ingress.stop()

    def _tenant_ca(self, tenant: str) -> str | None:
        with self._lock:
            spec = self._tenants.get(tenant)
        return spec.ca_pem if spec else None

    def _command(self, spec: EndpointSpec) -> ReplicaCommand:
        """Where a replica finds the model: the store's folder, or its S3 bucket."""
        s = self.settings
        env: dict[str, str] = {}
        if s.uses_s3:
            base = f"s3://{s.s3_bucket_prefix}{spec.tenant}/{spec.model_name}"
            env = {
                k: v
                for k, v in {
                    "IMM_S3_ENDPOINT": s.s3_endpoint,
                    "IMM_S3_ACCESS_KEY": s.s3_access_key,
                    "IMM_S3_SECRET_KEY": s.s3_secret_key,
                    "IMM_S3_REGION": s.s3_region,
                }.items()
                if v
            }
        else:
            base = str(s.store_dir.resolve() / spec.tenant / spec.model_name)
        return ReplicaCommand(
            model_name=spec.model_name,
            model_version=spec.model_version,
            base_path=base,
            cache_dir=s.data_dir.resolve() / "cache" / spec.tenant,
            env=env,
            threads=intra_op_threads(spec.resources),
        )

    # -- Runtime --------------------------------------------------------------------------
    def apply_tenant(self, spec: TenantSpec) -> None:
        with self._lock:
            self._tenants[spec.name] = spec

    def delete_tenant(self, name: str) -> None:
        for tenant, endpoint in self.supervisor.endpoints():
            if tenant == name:
                self.supervisor.remove(tenant, endpoint)
        with self._lock:
            self._tenants.pop(name, None)

    def apply_endpoint(self, spec: EndpointSpec) -> None:
        self.supervisor.set_desired(spec, limits_of(spec.resources))

    def delete_endpoint(self, tenant: str, name: str) -> None:
        self.supervisor.remove(tenant, name)

    def observe_endpoint(self, tenant: str, name: str) -> EndpointObservation | None:
        return self.supervisor.observe(tenant, name)

    def list_endpoints(self) -> set[tuple[str, str]]:
        return self.supervisor.endpoints()

    def list_tenants(self) -> set[str]:
        with self._lock:
            return set(self._tenants)
