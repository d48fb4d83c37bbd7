"""A configured client of the official ``kubernetes`` package, without global state.

Kubeconfig when one is named (``IMM_K8S_KUBECONFIG``), the pod's service account when running
in a cluster, else the usual ``$KUBECONFIG`` / ``~/.kube/config``.
"""

from __future__ import annotations

import os

from kubernetes import client, config

from imm.runtime.kubernetes.settings import KubernetesSettings


def make_api_client(settings: KubernetesSettings) -> client.ApiClient:
    configuration = client.Configuration()
    if settings.kubeconfig:
        config.load_kube_config(
            config_file=settings.kubeconfig,
            context=settings.context,
            client_configuration=configuration,
        )
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(context=settings.context, client_configuration=configuration)
    return client.ApiClient(configuration)
