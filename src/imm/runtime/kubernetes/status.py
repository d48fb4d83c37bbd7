"""From what the cluster reports about an endpoint to the design's endpoint status.

Inputs are the endpoint's Deployment, the Warning events of its ReplicaSets and its pods, as
the official client returns them. Kubernetes says *why* pods are missing in three places:
the Deployment's conditions (``ProgressDeadlineExceeded``, ``ReplicaFailure``), the
ReplicaSet's ``FailedCreate`` events (a quota refusal is only visible there and in the
condition) and the containers' last termination (a model server that exits at start).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kubernetes.client import CoreV1Event, V1Deployment, V1Pod

from imm.runtime.base import EndpointObservation, EndpointStatus

MESSAGE_MAX = 1000


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MESSAGE_MAX else text[-MESSAGE_MAX:]


def _condition(deployment: V1Deployment, kind: str) -> tuple[str, str, str] | None:
    for cond in (deployment.status.conditions if deployment.status else None) or []:
        if cond.type == kind:
            return cond.status, cond.reason or "", cond.message or ""
    return None


def _event_key(event: CoreV1Event) -> float:
    stamp = event.last_timestamp or event.event_time or event.first_timestamp
    return stamp.timestamp() if stamp else float("-inf")


def replica_set_events(events: Sequence[CoreV1Event], deployment: str) -> list[CoreV1Event]:
    """Events of this Deployment's ReplicaSets: named ``<deployment>-<pod-template-hash>``;
    the hash has no '-', so endpoint ``a`` never picks up events of endpoint ``a-b``."""
    pattern = re.compile(rf"^{re.escape(deployment)}-[a-z0-9]+$")
    return [
        e
        for e in events
        if e.involved_object.kind == "ReplicaSet" and pattern.match(e.involved_object.name or "")
    ]


def _progress_since(deployment: V1Deployment) -> float:
    """When the Deployment last changed course (a new ReplicaSet, a scale): warnings older
    than that belong to an earlier rollout. Events live for an hour and outlast fixes."""
    for cond in (deployment.status.conditions if deployment.status else None) or []:
        if cond.type == "Progressing" and cond.last_update_time:
            return cond.last_update_time.timestamp()
    return float("-inf")


def creation_failure(deployment: V1Deployment, events: Sequence[CoreV1Event]) -> str | None:
    """Why pods cannot be created (e.g. ``exceeded quota``): the newest such event of the
    current rollout, else the ``ReplicaFailure`` condition the controller keeps current."""
    since = _progress_since(deployment)
    failed = [
        e
        for e in replica_set_events(events, deployment.metadata.name)
        if e.reason == "FailedCreate" and _event_key(e) >= since
    ]
    if failed:
        return _short(f"FailedCreate: {max(failed, key=_event_key).message or ''}")
    cond = _condition(deployment, "ReplicaFailure")
    if cond and cond[0] == "True":
        return _short(f"{cond[1] or 'ReplicaFailure'}: {cond[2]}")
    return None


PULL_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName"}


def crash_failure(pods: Sequence[V1Pod], restarts: int) -> str | None:
    """Why a model server does not come up: its image cannot be pulled, or it keeps exiting
    (then its last termination message, i.e. its last log lines)."""
    for pod in pods:
        for status in (pod.status.container_statuses if pod.status else None) or []:
            waiting = status.state.waiting if status.state else None
            if waiting and waiting.reason in PULL_ERRORS:
                return _short(f"{waiting.reason}: {waiting.message or ''}")
            if status.restart_count < restarts:
                continue
            last = status.last_state.terminated if status.last_state else None
            if last is not None:
                detail = last.message or last.reason or ""
                return _short(f"model server exited with code {last.exit_code}: {detail}")
            if waiting and waiting.reason:
                return _short(f"{waiting.reason}: {waiting.message or ''}")
    return None


def settled(deployment: V1Deployment) -> bool:
    """Scaled to 0, or the controller has seen the latest spec and every wanted replica is
    updated and ready: then there is no need to ask why not."""
    desired = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    st = deployment.status
    if desired == 0:
        return True
    if st is None or (st.observed_generation or 0) < (deployment.metadata.generation or 0):
        return False
    return (st.ready_replicas or 0) >= desired and (st.updated_replicas or 0) >= desired


def observe(
    deployment: V1Deployment,
    events: Sequence[CoreV1Event] = (),
    pods: Sequence[V1Pod] = (),
    crash_restarts: int = 3,
) -> EndpointObservation:
    """running: all wanted replicas ready; degraded: some; pending: none yet, still trying;
    failed: none, and Kubernetes says it will not get there by itself; scaled to 0."""
    desired = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    st = deployment.status
    ready = (st.ready_replicas if st else None) or 0
    updated = (st.updated_replicas if st else None) or 0
    resources = deployment.spec.template.spec.containers[0].resources
    limits = bool(resources and resources.limits)

    def result(status: EndpointStatus, error: str | None = None) -> EndpointObservation:
        return EndpointObservation(
            status=status,
            desired_replicas=desired,
            ready_replicas=ready,
            updated_replicas=updated,
            last_error=error,
            limits_enforced=True if limits else None,
        )

    if desired == 0:
        return result("scaled to 0")
    progressing = _condition(deployment, "Progressing") or ("", "", "")
    deadline = (
        f"ProgressDeadlineExceeded: {progressing[2]}"
        if progressing[:2] == ("False", "ProgressDeadlineExceeded")
        else None
    )
    # Stale warnings of a finished rollout are not this endpoint's news.
    error = (
        None
        if settled(deployment)
        else crash_failure(pods, crash_restarts) or creation_failure(deployment, events) or deadline
    )
    if ready >= desired:
        return result("degraded" if error else "running", error)
    if ready > 0:
        return result("degraded", error)
    return result("failed" if error else "pending", error)
