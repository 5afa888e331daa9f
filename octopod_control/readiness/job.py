"""Job: ready when its Complete condition is True; a Failed condition (backoff
limit, deadline) is a failure with its reason. A Job still running counts as
partial while some of its pods are ready (status.ready, else status.active),
and as failed when none is (pods pending, pulling, crashing).
"""
from __future__ import annotations

from typing import Any, Mapping

from . import FAILED, Verdict, condition, judge, parts

KIND = "Job"


def _true(status: Mapping[str, Any], kind: str) -> dict | None:
    cond = condition(status, kind)
    return cond if cond and cond.get("status") == "True" else None


def verdict(obj: Mapping[str, Any]) -> Verdict:
    meta, spec, status = parts(obj)
    succeeded = status.get("succeeded") or 0
    counts = f"{succeeded}/{spec.get('completions') or 1} succeeded, {status.get('active') or 0} active"
    failed = _true(status, "Failed")
    if failed:
        detail = ": ".join(x for x in (failed.get("reason"), failed.get("message")) if x)
        return Verdict(KIND, meta.get("name", "?"), FAILED, counts, [f"job failed: {detail or 'Failed'}"])
    if _true(status, "Complete"):
        return judge(KIND, obj, True, succeeded, counts, [])
    reasons = ["suspended"] if spec.get("suspend") else ["not complete yet"]
    running = status.get("ready", status.get("active")) or 0
    return judge(KIND, obj, False, running, counts, reasons)
