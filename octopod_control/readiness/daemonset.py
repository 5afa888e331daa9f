"""DaemonSet: ready when the controller has observed the latest spec and
desired = updated = available pods (0 desired, e.g. no matching node, is ready).
Under OnDelete, pods are replaced by hand, so updated is not required.
"""
from __future__ import annotations

from typing import Any, Mapping

from . import Verdict, judge, observed, parts

KIND = "DaemonSet"


def verdict(obj: Mapping[str, Any]) -> Verdict:
    meta, spec, status = parts(obj)
    desired = status.get("desiredNumberScheduled") or 0
    updated = status.get("updatedNumberScheduled") or 0
    available = status.get("numberAvailable") or 0
    on_delete = (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
    seen = observed(meta, status)
    ready = seen and desired == available and (on_delete or updated == desired)
    reasons = [] if seen else ["spec change not yet observed by the controller"]
    return judge(KIND, obj, ready, available,
                 f"{available}/{desired} available, {updated} updated", reasons)
