"""What archive records on a workload, and the two ways of stopping that several kinds share.

Archive stops a workload with one merge patch that also records, in an annotation, what
it ran with; restore (after helm's upgrade) fills that value back in where the chart says
nothing, and drops the record. The records, read by archive, restore and archive_check:

  octopod.io/archived-replicas        the replicas before scale to 0 (Deployment, StatefulSet)
  octopod.io/archived-suspend         "false": suspend was off before (CronJob, Job)
  octopod.io/archived-node-selector   the nodeSelector before parking, JSON (DaemonSet)
  nodeSelector octopod.io/archived=true   a node label no node has: a parked DaemonSet's mark

Scaling and suspending are here because two kinds each use them; parking is the
DaemonSet's alone (daemonset.py).
"""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Optional

from .base import Change, Object, annotations_of, name_of

ARCHIVED_REPLICAS = "octopod.io/archived-replicas"
ARCHIVED_SUSPEND = "octopod.io/archived-suspend"
ARCHIVED_NODE_SELECTOR = "octopod.io/archived-node-selector"
PARKED = ("octopod.io/archived", "true")


# -- the codecs: a record's text to the value it stands for (ValueError when it is none)
def parse_count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def parse_flag(text: str) -> bool:
    return text == "true"


def parse_selector(text: str) -> dict[str, str]:
    value = json.loads(text)  # a JSONDecodeError is a ValueError
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(text)
    return value


def label(kind: str, obj: Object) -> str:
    """kind/name, as kubectl names an object and every line about one starts."""
    return f"{kind.lower()}/{name_of(obj)}"


def _spec(obj: Object) -> dict:
    return obj.get("spec") or {}


# -- scale to 0 (Deployment, StatefulSet)
def replicas(obj: Object) -> int:
    return _spec(obj).get("replicas", 1)  # the API's default when unset


def scale_down(kind: str, obj: Object) -> Change:
    """0 replicas, the count recorded; one already at 0 keeps the record it has."""
    count = replicas(obj)
    if not count:
        recorded = annotations_of(obj).get(ARCHIVED_REPLICAS)
        return Change(note=f"{label(kind, obj)} already at 0"
                      + (f" (records {recorded})" if recorded else ""))
    return Change({"metadata": {"annotations": {ARCHIVED_REPLICAS: str(count)}},
                   "spec": {"replicas": 0}})


def scaled_archived(obj: Object) -> bool:
    return ARCHIVED_REPLICAS in annotations_of(obj)


def scale_back(kind: str, obj: Object, spec: Optional[Mapping[str, Any]]) -> Change:
    return restore_field(kind, obj, spec, ARCHIVED_REPLICAS, "replicas", 0, parse_count)


def unscaled(kind: str, obj: Object) -> Optional[str]:
    count = replicas(obj)
    return f"{label(kind, obj)}: spec.replicas is {count}, not 0" if count else None


# -- suspend (CronJob, Job)
def suspended(obj: Object) -> bool:
    return bool(_spec(obj).get("suspend"))


def suspend(kind: str, obj: Object) -> Change:
    """suspend: true, "false" recorded. A CronJob starts no more Jobs; a suspended Job's
    controller deletes its running Pods."""
    if suspended(obj):
        return Change(note=f"{label(kind, obj)} already suspended")
    return Change({"metadata": {"annotations": {ARCHIVED_SUSPEND: "false"}},
                   "spec": {"suspend": True}})


def suspend_archived(obj: Object) -> bool:
    return ARCHIVED_SUSPEND in annotations_of(obj)


def resume(kind: str, obj: Object, spec: Optional[Mapping[str, Any]]) -> Change:
    return restore_field(kind, obj, spec, ARCHIVED_SUSPEND, "suspend", True, parse_flag)


# -- the Kind fields of a kind that uses one of them: Kind(..., **stopped_by_scaling(NAME))
def stopped_by_scaling(kind: str) -> dict[str, Any]:
    """stop, archived, restore and still_running of a kind archive scales to 0."""
    return {"stop": lambda obj: scale_down(kind, obj), "archived": scaled_archived,
            "restore": lambda obj, spec: scale_back(kind, obj, spec),
            "still_running": lambda obj: unscaled(kind, obj)}


def stopped_by_suspending(kind: str) -> dict[str, Any]:
    """stop, archived, restore and still_running of a kind archive suspends."""
    return {"stop": lambda obj: suspend(kind, obj), "archived": suspend_archived,
            "restore": lambda obj, spec: resume(kind, obj, spec),
            "still_running": lambda obj: None if suspended(obj) else f"{label(kind, obj)}: not suspended"}


# -- restore of one spec field (replicas, suspend)
def restore_field(kind: str, obj: Object, spec: Optional[Mapping[str, Any]], annotation: str,
                  field: str, archived_value: Any, parse: Callable[[str], Any]) -> Change:
    """The recorded value back where the chart does not set the field; the record dropped.

    helm's upgrade has just set every field the chart renders (helm 3, and helm 4 applying
    client-side, by a three-way merge against the live object; helm 4's server-side apply
    re-applies it), so a field the chart sets is the chart's: the record is not needed. A
    field it does not render is as archive left it: the record fills it in. With no
    manifest to ask (spec None), only a field still at archive's value is filled in.
    """
    what, text = label(kind, obj), annotations_of(obj).get(annotation)
    drop: dict[str, Any] = {"metadata": {"annotations": {annotation: None}}}
    try:
        value = parse(text) if text is not None else None
    except ValueError:
        return Change(drop, warning=f"{what}: {annotation}={text!r} is not a value; left as helm set it")
    if value is None:
        return Change(drop)
    live = _spec(obj).get(field)
    chart_sets = (live is not None and live != archived_value) if spec is None else field in spec
    if chart_sets:
        return Change(drop, f"{what}: the chart sets {field} ({live}); recorded {text} not needed")
    return Change({**drop, "spec": {field: value}},
                  f"{what}: the chart does not set {field}; restoring the recorded {text}")
