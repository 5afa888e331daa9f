"""StatefulSet.

Readiness: ready when the controller has observed the latest spec,
readyReplicas >= spec.replicas, no more pods than wanted (status.replicas above
spec.replicas: kstatus's ExtraPods) and, under RollingUpdate, the update revision is
rolled out: with a partition P, updatedReplicas >= replicas - P; without one,
currentRevision = updateRevision (kubedog's StatefulSetComplete) and, where the
controller reports it, currentReplicas >= spec.replicas (kstatus's LessCurrent: a
rolling update without revision fields). OnDelete needs no rollout check (a person
replaces the pods).

Its Pods: those it controls (owner references), of its update revision (the
controller-revision-hash label) once the controller reports one.

Archive scales it to 0, recording the replicas (its volumes stay); restore brings
them back where the chart does not set them (archived.py); archive_check wants 0.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from . import archived
from .base import Kind, Object
from .pods import owned
from .readiness import Verdict, judge, observed, parts

NAME = "StatefulSet"


def rollout_pending(spec: Mapping[str, Any], status: Mapping[str, Any], want: int) -> Optional[str]:
    """Why the update revision is not rolled out yet, or None when it is."""
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return None
    updated = status.get("updatedReplicas") or 0
    in_progress = f"rolling update in progress: {updated} updated to revision {status.get('updateRevision', '?')}"
    partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
    if partition > 0:
        return None if updated >= max(want - partition, 0) else in_progress
    if status.get("updateRevision") != status.get("currentRevision"):
        return in_progress
    current = status.get("currentReplicas")
    if current is not None and current < want:
        return f"rolling update in progress: {current}/{want} pods at the current revision"
    return None


def verdict(obj: Mapping[str, Any]) -> Verdict:
    meta, spec, status = parts(obj)
    want = spec.get("replicas", 1)
    ready_count = status.get("readyReplicas") or 0
    # availableReplicas honours minReadySeconds (Kubernetes >= 1.22); older servers lack it.
    available = status.get("availableReplicas", ready_count) or 0
    seen = observed(meta, status)
    pending = rollout_pending(spec, status, want)
    extra = (status.get("replicas") or 0) - want
    reasons = []
    if not seen:
        reasons.append("spec change not yet observed by the controller")
    elif pending:
        reasons.append(pending)
    if seen and extra > 0:
        reasons.append(f"{extra} pods more than the {want} wanted, pending termination")
    ready = seen and ready_count >= want and not pending and extra <= 0
    return judge(NAME, obj, ready, available, f"{ready_count}/{want} ready", reasons)


def pods(obj: Object, all_pods: list[dict], replicasets: Optional[Sequence[Any]] = None) -> list:
    """The Pods it controls, of its update revision once the controller reports one."""
    mine = owned(obj, all_pods)
    revision = (obj.get("status") or {}).get("updateRevision")
    if not revision:
        return mine
    return [p for p in mine
            if ((p.get("metadata") or {}).get("labels") or {}).get("controller-revision-hash", revision) == revision]


KIND = Kind(NAME, "/apis/apps/v1/namespaces/{ns}/statefulsets", verdict=verdict, pods=pods,
            **archived.stopped_by_scaling(NAME))
