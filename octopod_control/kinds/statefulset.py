"""StatefulSet.

Readiness: ready when the controller has observed the latest spec,
readyReplicas >= spec.replicas and, under RollingUpdate, the update revision is
rolled out: with a partition P, updatedReplicas >= replicas - P; without one,
currentRevision = updateRevision (kubedog's StatefulSetComplete). OnDelete
needs no rollout check (a person replaces the pods).

Archive scales it to 0, recording the replicas (its volumes stay); restore brings
them back where the chart does not set them (archived.py); archive_check wants 0.
"""
from __future__ import annotations

from typing import Any, Mapping

from . import archived
from .base import Kind
from .pods import selected
from .readiness import Verdict, judge, observed, parts

NAME = "StatefulSet"


def rolled_out(spec: Mapping[str, Any], status: Mapping[str, Any], want: int) -> bool:
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return True
    partition = (strategy.get("rollingUpdate") or {}).get("partition") or 0
    if partition > 0:
        return (status.get("updatedReplicas") or 0) >= max(want - partition, 0)
    return status.get("updateRevision") == status.get("currentRevision")


def verdict(obj: Mapping[str, Any]) -> Verdict:
    meta, spec, status = parts(obj)
    want = spec.get("replicas", 1)
    ready_count = status.get("readyReplicas") or 0
    # availableReplicas honours minReadySeconds (Kubernetes >= 1.22); older servers lack it.
    available = status.get("availableReplicas", ready_count) or 0
    seen = observed(meta, status)
    rolled = rolled_out(spec, status, want)
    reasons = []
    if not seen:
        reasons.append("spec change not yet observed by the controller")
    elif not rolled:
        reasons.append(f"rolling update in progress: {status.get('updatedReplicas') or 0} updated "
                       f"to revision {status.get('updateRevision', '?')}")
    ready = seen and ready_count >= want and rolled
    return judge(NAME, obj, ready, available, f"{ready_count}/{want} ready", reasons)


KIND = Kind(NAME, "/apis/apps/v1/namespaces/{ns}/statefulsets", verdict=verdict, pods=selected,
            **archived.stopped_by_scaling(NAME))
