"""Deployment.

Readiness: ready when the controller has observed the latest spec,
updated = replicas = available = spec.replicas (0 replicas is ready), and neither
its Progressing nor its Available condition is False (kstatus: ReplicaSetNotAvailable,
DeploymentNotAvailable). As kubedog (and kubectl rollout status): old replicas pending
termination or updated ones not yet available mean the rollout is not done; a
Progressing condition with ProgressDeadlineExceeded and a ReplicaFailure condition
are reported as reasons.

Failed for good (create's fail-fast rule), once the controller has observed the
latest spec: ProgressDeadlineExceeded, or a ReplicaFailure condition (a quota, a
forbidden pod: the ReplicaSet cannot create its Pods).

Its Pods are those of the ReplicaSet of its current template (`current_replicaset`:
owned by it, its template equal but for the pod-template-hash label, as the
deployment controller and kubectl find it); without the ReplicaSets, the selector's.

Archive scales it to 0, recording the replicas; restore brings them back where
the chart does not set them (archived.py); archive_check wants 0 replicas.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from . import archived
from .base import Kind, Object, uid_of
from .pods import controller, owned, selected
from .readiness import Verdict, condition, explain, judge, observed, parts

NAME = "Deployment"
HASH_LABEL = "pod-template-hash"


def verdict(obj: Mapping[str, Any]) -> Verdict:
    meta, spec, status = parts(obj)
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    current = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    seen = observed(meta, status)
    progressing = condition(status, "Progressing") or {}
    availability = condition(status, "Available") or {}
    conditions_ok = progressing.get("status") != "False" and availability.get("status") != "False"
    ready = seen and updated == current == available == want and conditions_ok
    reasons = []
    if not seen:
        reasons.append("spec change not yet observed by the controller")
    elif current > updated:
        reasons.append(f"{current - updated} old replicas pending termination")
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        reasons.append("progress deadline exceeded")
    elif progressing.get("status") == "False":
        reasons.append(f"not progressing ({explain(progressing)})")
    if availability.get("status") == "False":
        reasons.append(f"not available ({explain(availability)})")
    failure = condition(status, "ReplicaFailure") or {}
    if failure.get("status") == "True":
        reasons.append(f"replica failure: {failure.get('message') or failure.get('reason', '')}".strip())
    return judge(NAME, obj, ready, available,
                 f"{available}/{want} available, {updated} updated", reasons)


def failed(obj: Object) -> Optional[str]:
    """ProgressDeadlineExceeded or ReplicaFailure on the spec the controller has observed."""
    meta, _, status = parts(obj)
    if not observed(meta, status):
        return None  # a condition of the previous spec says nothing about this one
    progressing = condition(status, "Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return f"progress deadline exceeded ({explain(progressing)})"
    failure = condition(status, "ReplicaFailure") or {}
    if failure.get("status") == "True":
        return f"replica failure ({explain(failure)})"
    return None


def _template_key(template: Any) -> dict:
    """A pod template without the pod-template-hash label: what makes a ReplicaSet current."""
    template = dict(template or {})
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    template["metadata"] = meta
    return template


def current_replicaset(obj: Object, replicasets: Sequence[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """The ReplicaSet of the Deployment's current template, None before the controller made it."""
    uid = uid_of(obj)
    want = _template_key((obj.get("spec") or {}).get("template"))
    for rs in replicasets:
        ref = controller(rs)
        if uid and ref and ref.get("uid") == uid and _template_key((rs.get("spec") or {}).get("template")) == want:
            return rs
    return None


def pods(obj: Object, all_pods: list[dict],
         replicasets: Optional[Sequence[Mapping[str, Any]]] = None) -> Optional[list]:
    """The Pods of its current ReplicaSet, None when that is not among the ReplicaSets given
    (not made yet, or made since they were read); with none given, every Pod its selector picks."""
    if replicasets is None:
        return selected(obj, all_pods)
    rs = current_replicaset(obj, replicasets)
    return owned(rs, all_pods) if rs is not None else None


KIND = Kind(NAME, "/apis/apps/v1/namespaces/{ns}/deployments", verdict=verdict, pods=pods, failure=failed,
            via="ReplicaSet",
            **archived.stopped_by_scaling(NAME))
