"""Deployment: ready when the controller has observed the latest spec and
updated = replicas = available = spec.replicas (0 replicas is ready).

As kubedog (and kubectl rollout status): old replicas pending termination or
updated ones not yet available mean the rollout is not done; a Progressing
condition with ProgressDeadlineExceeded and a ReplicaFailure condition are
reported as reasons.
"""
from __future__ import annotations

from typing import Any, Mapping

from . import Verdict, condition, judge, observed, parts

KIND = "Deployment"


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
    return judge(KIND, obj, ready, available,
                 f"{available}/{want} available, {updated} updated", reasons)
