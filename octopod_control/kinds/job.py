"""Job.

Readiness: ready when its Complete condition is True; a Failed condition (backoff
limit, deadline) is a failure with its reason. A Job still running counts as
partial while some of its pods are ready (status.ready, else status.active),
and as failed when none is (pods pending, pulling, crashing). A Job the release
declares but the cluster lacks is no failure: a finished one is deleted by its
ttlSecondsAfterFinished (or by hand) while the release still declares it.

Failed for good (create's fail-fast rule): a Failed condition. Its Pods: those it
controls (owner references), or, without a selector, its job-name label's.

Archive suspends an unfinished Job (its controller deletes its running Pods),
recording suspend: false; a finished one runs nothing, and resuming it would not
run it again. Restore resumes it where the chart does not set suspend.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from . import archived
from .archived import label
from .base import Change, Kind, Object
from .pods import owned
from .readiness import FAILED, Verdict, condition, judge, parts

NAME = "Job"


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
        return Verdict(NAME, meta.get("name", "?"), FAILED, counts, [f"job failed: {detail or 'Failed'}"])
    if _true(status, "Complete"):
        return judge(NAME, obj, True, succeeded, counts, [])
    reasons = ["suspended"] if spec.get("suspend") else ["not complete yet"]
    running = status.get("ready", status.get("active")) or 0
    return judge(NAME, obj, False, running, counts, reasons)


def failed(obj: Object) -> Optional[str]:
    """Its Failed condition (a backoff limit, a deadline), which no retry undoes."""
    cond = _true(obj.get("status") or {}, "Failed")
    if not cond:
        return None
    return "job failed: " + (": ".join(x for x in (cond.get("reason"), cond.get("message")) if x) or "Failed")


def pods(obj: Object, all_pods: list[dict], replicasets: Any = None) -> list[dict]:
    """The Pods it controls; a Job's generated selector may be absent: then its job-name label's."""
    matched = owned(obj, all_pods)
    if matched or ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels"):
        return matched
    name = (obj.get("metadata") or {}).get("name")
    return [p for p in all_pods if ((p.get("metadata") or {}).get("labels") or {}).get("job-name") == name]


def finished(obj: Object) -> bool:
    """Complete or Failed: a finished Job runs no Pod, and resuming it would not run it again."""
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in ((obj.get("status") or {}).get("conditions") or []))


def stop(obj: Object) -> Change:
    if finished(obj):
        return Change(note=f"{label(NAME, obj)} already finished")
    return archived.suspend(NAME, obj)


def restore(obj: Object, spec: Optional[Mapping[str, Any]]) -> Change:
    return archived.resume(NAME, obj, spec)


def still_running(obj: Object) -> Optional[str]:
    if finished(obj) or archived.suspended(obj):
        return None
    return f"{label(NAME, obj)}: not finished and not suspended"


KIND = Kind(NAME, "/apis/batch/v1/namespaces/{ns}/jobs", verdict=verdict, pods=pods, failure=failed, may_vanish=True,
            stop=stop, archived=archived.suspend_archived, restore=restore, still_running=still_running)
