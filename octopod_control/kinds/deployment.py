"""Deployment.

Readiness: ready when the controller has observed the latest spec and
updated = replicas = available = spec.replicas (0 replicas is ready).
As kubedog (and kubectl rollout status): old replicas pending termination or
updated ones not yet available mean the rollout is not done; a Progressing
condition with ProgressDeadlineExceeded and a ReplicaFailure condition are
reported as reasons.

Archive scales it to 0, recording the replicas; restore brings them back where
the chart does not set them (archived.py); archive_check wants 0 replicas.
"""
from __future__ import annotations

from typing import Any, Mapping

from . import archived
from .base import Kind
from .pods import selected
from .readiness import Verdict, condition, judge, observed, parts

NAME = "Deployment"


def verdict(obj: Mapping[str, Any]) -> Verdict:
    meta, spec, status = parts(obj)
    want = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    current = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    seen = observed(meta, status)
    ready = seen and updated == current == available == want
    reasons = []
    if not seen:
        reasons.append("spec change not yet observed by the controller")
    elif current > updated:
        reasons.append(f"{current - updated} old replicas pending termination")
    progressing = condition(status, "Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        reasons.append("progress deadline exceeded")
    failure = condition(status, "ReplicaFailure") or {}
    if failure.get("status") == "True":
        reasons.append(f"replica failure: {failure.get('message') or failure.get('reason', '')}".strip())
    return judge(NAME, obj, ready, available,
                 f"{available}/{want} available, {updated} updated", reasons)


KIND = Kind(NAME, "/apis/apps/v1/namespaces/{ns}/deployments", verdict=verdict, pods=selected,
            **archived.stopped_by_scaling(NAME))
