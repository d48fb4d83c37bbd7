"""The kubernetes runtime (``IMM_RUNTIME=kubernetes``): tenants and endpoints as cluster objects.

``render`` turns specs into manifests (pure), ``apply`` sends them with server-side apply,
``status`` maps what the cluster reports to endpoint status, ``runtime`` ties them together.
"""

from imm.runtime.kubernetes.runtime import KubernetesRuntime
from imm.runtime.kubernetes.settings import KubernetesSettings, StoreAccess

__all__ = ["KubernetesRuntime", "KubernetesSettings", "StoreAccess"]
