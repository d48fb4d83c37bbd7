"""Endpoint status from what the cluster records, read through the real client from
FakeKubeApiServer: Deployment status and conditions, ReplicaSet events, pod states."""

from __future__ import annotations

from typing import Any

import pytest
from fixtures.fake_kube_api import FakeKubeApiServer
from k8s_samples import TENANT, endpoint

from imm.runtime.kubernetes import KubernetesRuntime

NS = "imm-acme"
QUOTA_MESSAGE = (
    'pods "resnet-7d9f8b6c5d-x2x9q" is forbidden: exceeded quota: imm-quota, '
    "requested: requests.cpu=500m, used: requests.cpu=4, limited: requests.cpu=4"
)


@pytest.fixture
def deployed(runtime: KubernetesRuntime, fake_api: FakeKubeApiServer) -> KubernetesRuntime:
    runtime.apply_tenant(TENANT)
    runtime.apply_endpoint(endpoint(replicas=3))
    fake_api.take_requests()
    return runtime


def _status(
    ready: int = 0,
    updated: int = 0,
    available: int | None = None,
    observed: int = 1,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "observedGeneration": observed,
        "replicas": max(ready, updated),
        "readyReplicas": ready,
        "updatedReplicas": updated,
        "availableReplicas": ready if available is None else available,
        "conditions": conditions or [],
    }


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def _event(name: str, replica_set: str, reason: str, message: str, when: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS},
        "involvedObject": {"kind": "ReplicaSet", "name": replica_set, "namespace": NS},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": 3,
        "firstTimestamp": when,
        "lastTimestamp": when,
    }


def _pod(name: str, restarts: int, last_message: str | None, waiting: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {"imm.io/tenant": "acme", "imm.io/endpoint": "resnet"},
        },
        "spec": {"containers": [{"name": "model-server", "image": "x"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "model-server",
                    "image": "x",
                    "imageID": "",
                    "ready": False,
                    "restartCount": restarts,
                    "state": {"waiting": {"reason": waiting, "message": "back-off 40s"}},
                    "lastState": {
                        "terminated": {
                            "exitCode": 2,
                            "reason": "Error",
                            "message": last_message,
                        }
                    }
                    if last_message
                    else {},
                }
            ],
        },
    }


def _observe(runtime: KubernetesRuntime) -> Any:
    observed = runtime.observe_endpoint("acme", "resnet")
    assert observed is not None
    return observed


def test_unknown_endpoint_is_not_observed(deployed: KubernetesRuntime) -> None:
    assert deployed.observe_endpoint("acme", "nothing") is None


def test_before_the_controller_reports_the_endpoint_is_pending(
    deployed: KubernetesRuntime,
) -> None:
    observed = _observe(deployed)
    assert (observed.status, observed.desired_replicas, observed.ready_replicas) == (
        "pending",
        3,
        0,
    )
    assert observed.last_error is None


def test_all_replicas_ready_is_running_and_needs_one_read(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    fake_api.set_status("deployments", NS, "resnet", _status(ready=3, updated=3))
    observed = _observe(deployed)
    assert (observed.status, observed.ready_replicas, observed.updated_replicas) == (
        "running",
        3,
        3,
    )
    assert observed.limits_enforced is True
    assert [(r.verb, r.target[0]) for r in fake_api.take_requests()] == [("get", "deployments")]


def test_some_replicas_ready_is_degraded(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    fake_api.set_status("deployments", NS, "resnet", _status(ready=1, updated=3))
    observed = _observe(deployed)
    assert (observed.status, observed.ready_replicas) == ("degraded", 1)


def test_a_status_older_than_the_spec_is_not_taken_as_settled(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    """Right after an update the status still counts the old pods as updated."""
    fake_api.set_status("deployments", NS, "resnet", _status(ready=3, updated=3))
    deployed.apply_endpoint(endpoint(replicas=3, version=2))
    fake_api.take_requests()
    observed = _observe(deployed)
    assert observed.status == "running"  # the old pods still serve
    assert {r.target[0] for r in fake_api.take_requests()} == {"deployments", "events", "pods"}


def test_quota_refusal_is_failed_with_the_quota_message_as_last_error(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    fake_api.set_status(
        "deployments",
        NS,
        "resnet",
        _status(
            conditions=[
                _condition("Available", "False", "MinimumReplicasUnavailable", "no replicas"),
                _condition("ReplicaFailure", "True", "FailedCreate", QUOTA_MESSAGE),
            ]
        ),
    )
    fake_api.put(
        "events",
        _event(
            "e1",
            "resnet-7d9f8b6c5d",
            "FailedCreate",
            f"Error creating: {QUOTA_MESSAGE}",
            "2026-01-01T00:00:05Z",
        ),
    )
    observed = _observe(deployed)
    assert observed.status == "failed"
    assert observed.last_error is not None
    assert "exceeded quota: imm-quota" in observed.last_error
    assert observed.last_error.startswith("FailedCreate: Error creating:")


def test_quota_refusal_of_the_surge_pod_leaves_the_old_pods_serving_degraded(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    fake_api.set_status("deployments", NS, "resnet", _status(ready=3, updated=0))
    fake_api.put(
        "events",
        _event(
            "e1",
            "resnet-5c4b3a2d1e",
            "FailedCreate",
            f"Error creating: {QUOTA_MESSAGE}",
            "2026-01-01T00:00:05Z",
        ),
    )
    observed = _observe(deployed)
    assert observed.status == "degraded"
    assert observed.last_error is not None and "exceeded quota" in observed.last_error


def test_the_newest_failure_event_wins_and_other_endpoints_events_are_ignored(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    fake_api.put(
        "events", _event("e1", "resnet-aaa111", "FailedCreate", "old news", "2026-01-01T00:00:01Z")
    )
    fake_api.put(
        "events",
        _event("e2", "resnet-bbb222", "FailedCreate", "the latest", "2026-01-01T00:00:09Z"),
    )
    fake_api.put(
        "events",
        _event("e3", "resnet-b-ccc333", "FailedCreate", "not ours", "2026-01-01T00:00:10Z"),
    )
    observed = _observe(deployed)
    assert observed.last_error == "FailedCreate: the latest"


def test_stale_warnings_do_not_stain_a_settled_endpoint(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    fake_api.put(
        "events",
        _event("e1", "resnet-aaa111", "FailedCreate", f"x {QUOTA_MESSAGE}", "2026-01-01T00:00:01Z"),
    )
    fake_api.set_status("deployments", NS, "resnet", _status(ready=3, updated=3))
    observed = _observe(deployed)
    assert (observed.status, observed.last_error) == ("running", None)


def test_progress_deadline_exceeded_is_failed(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    message = 'ReplicaSet "resnet-7d9f8b6c5d" has timed out progressing.'
    fake_api.set_status(
        "deployments",
        NS,
        "resnet",
        _status(
            conditions=[_condition("Progressing", "False", "ProgressDeadlineExceeded", message)]
        ),
    )
    observed = _observe(deployed)
    assert observed.status == "failed"
    assert observed.last_error == f"ProgressDeadlineExceeded: {message}"


def test_a_crash_looping_model_server_is_failed_with_its_exit_message(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    fake_api.set_status("deployments", NS, "resnet", _status(updated=3))
    fake_api.put(
        "pods",
        _pod("resnet-7d9f8b6c5d-a", 4, "model resnet50 version 1 not found", "CrashLoopBackOff"),
    )
    observed = _observe(deployed)
    assert observed.status == "failed"
    assert observed.last_error == (
        "model server exited with code 2: model resnet50 version 1 not found"
    )


def test_a_model_server_restarting_fewer_times_is_still_pending(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    fake_api.set_status("deployments", NS, "resnet", _status(updated=3))
    fake_api.put("pods", _pod("resnet-7d9f8b6c5d-a", 1, "slow start", "CrashLoopBackOff"))
    assert _observe(deployed).status == "pending"


def test_an_image_that_cannot_be_pulled_is_failed(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    fake_api.set_status("deployments", NS, "resnet", _status(updated=3))
    fake_api.put("pods", _pod("resnet-7d9f8b6c5d-a", 0, None, "ImagePullBackOff"))
    observed = _observe(deployed)
    assert observed.status == "failed"
    assert observed.last_error is not None and observed.last_error.startswith("ImagePullBackOff")


def test_scaled_to_zero(deployed: KubernetesRuntime, fake_api: FakeKubeApiServer) -> None:
    deployed.apply_endpoint(endpoint(replicas=0))
    observed = _observe(deployed)
    assert (observed.status, observed.desired_replicas) == ("scaled to 0", 0)


def test_failure_events_of_an_earlier_rollout_are_ignored(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    progressing = {
        **_condition("Progressing", "True", "NewReplicaSetCreated", "created"),
        "lastUpdateTime": "2026-01-01T01:00:00Z",
    }
    fake_api.set_status("deployments", NS, "resnet", _status(conditions=[progressing]))
    fake_api.put(
        "events",
        _event("e1", "resnet-aaa111", "FailedCreate", "fixed since", "2026-01-01T00:30:00Z"),
    )
    assert (_observe(deployed).status, _observe(deployed).last_error) == ("pending", None)
    fake_api.put(
        "events",
        _event("e2", "resnet-bbb222", "FailedCreate", "current", "2026-01-01T01:00:03Z"),
    )
    assert _observe(deployed).last_error == "FailedCreate: current"


def test_instant_rollouts_make_every_applied_endpoint_running(
    deployed: KubernetesRuntime, fake_api: FakeKubeApiServer
) -> None:
    """The fake's stand-in for a healthy cluster, for suites above the runtime."""
    fake_api.instant_rollouts = True
    deployed.apply_endpoint(endpoint(replicas=2, version=2))
    observed = _observe(deployed)
    assert (observed.status, observed.ready_replicas, observed.updated_replicas) == (
        "running",
        2,
        2,
    )
    deployed.apply_endpoint(endpoint(replicas=0, version=2))
    assert _observe(deployed).status == "scaled to 0"
