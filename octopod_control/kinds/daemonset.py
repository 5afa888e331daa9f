"""DaemonSet.

Readiness: ready when the controller has observed the latest spec, has counted
the nodes (desiredNumberScheduled reported: kstatus's NoDesiredNumber) and
desired = updated = available pods, with as many ready and scheduled (0 desired,
e.g. no matching node, is ready). Under OnDelete, pods are replaced by hand, so
updated is not required. Its Pods: those it controls (owner references).

A DaemonSet cannot be scaled, so archive parks it: its pod template gets a node
selector no node matches (octopod.io/archived=true), its controller deletes every
Pod, and the previous nodeSelector is recorded, as JSON, in the same patch. Restore
always unparks it; archive_check wants it parked.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional

from .archived import ARCHIVED_NODE_SELECTOR, PARKED, label, parse_selector
from .base import Change, Kind, Object, annotations_of
from .pods import owned
from .readiness import Verdict, judge, observed, parts

NAME = "DaemonSet"


def verdict(obj: Mapping[str, Any]) -> Verdict:
    meta, spec, status = parts(obj)
    counted = status.get("desiredNumberScheduled") is not None
    desired = status.get("desiredNumberScheduled") or 0
    updated = status.get("updatedNumberScheduled") or 0
    available = status.get("numberAvailable") or 0
    ready_count = status.get("numberReady") or 0
    scheduled = status.get("currentNumberScheduled", desired) or 0
    on_delete = (spec.get("updateStrategy") or {}).get("type") == "OnDelete"
    seen = observed(meta, status)
    reasons = []
    if not seen:
        reasons.append("spec change not yet observed by the controller")
    elif not counted:
        reasons.append("the controller has not counted the nodes yet (no desiredNumberScheduled)")
    if counted and scheduled < desired:
        reasons.append(f"{scheduled}/{desired} scheduled")
    if counted and ready_count < desired:
        reasons.append(f"{ready_count}/{desired} ready")
    ready = (seen and counted and desired == available and ready_count >= desired
             and scheduled >= desired and (on_delete or updated == desired))
    return judge(NAME, obj, ready, available,
                 f"{available}/{desired} available, {updated} updated", reasons)


def node_selector(obj: Object) -> dict:
    return ((((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeSelector")
            or {})


def is_parked(obj: Object) -> bool:
    key, value = PARKED
    return node_selector(obj).get(key) == value


def stop(obj: Object) -> Change:
    """Park it. One already parked keeps its record: it holds what ran before, never our key."""
    if is_parked(obj):
        return Change(note=f"{label(NAME, obj)} already parked")
    key, value = PARKED
    return Change({
        "metadata": {"annotations": {ARCHIVED_NODE_SELECTOR: json.dumps(node_selector(obj), sort_keys=True)}},
        "spec": {"template": {"spec": {"nodeSelector": {key: value}}}}})


def archived(obj: Object) -> bool:
    return ARCHIVED_NODE_SELECTOR in annotations_of(obj) or is_parked(obj)


def restore(obj: Object, spec: Optional[Mapping[str, Any]]) -> Change:
    """Unpark it: our key out of its nodeSelector, whatever helm's upgrade did with it.

    Where the chart sets a nodeSelector, helm has put the chart's keys back (helm 4's
    server-side apply with --force-conflicts replaces the whole atomic map; helm 3's
    three-way merge, and helm 4's client-side one, keep a key no manifest ever held,
    ours): only our key goes. Where the chart sets none, helm left the field alone and
    the recorded selector is what ran: it comes back. With no manifest to ask (spec
    None), only our key goes (and so it does without a readable record).
    """
    key = PARKED[0]
    text = annotations_of(obj).get(ARCHIVED_NODE_SELECTOR)
    warning = None
    try:
        recorded = parse_selector(text) if text is not None else None
    except ValueError:
        warning = f"{label(NAME, obj)}: {ARCHIVED_NODE_SELECTOR}={text!r} is not a value; left as helm set it"
        recorded = None
    current = node_selector(obj)
    live = {k: v for k, v in current.items() if k != key}
    chart_sets = spec is None or "nodeSelector" in (((spec.get("template") or {}).get("spec")) or {})
    wanted = live if chart_sets or recorded is None else {**live, **recorded}
    selector: dict[str, Any] | None = {key: None, **{k: v for k, v in wanted.items() if current.get(k) != v}}
    if not wanted:
        selector = None  # nothing left: back to no nodeSelector at all
    if chart_sets:
        how = "the chart sets its nodeSelector" if spec is not None else "no manifest to ask"
    else:
        how = "no record" if recorded is None else f"the recorded nodeSelector {recorded} restored"
    return Change({"metadata": {"annotations": {ARCHIVED_NODE_SELECTOR: None}},
                   "spec": {"template": {"spec": {"nodeSelector": selector}}}},
                  f"{label(NAME, obj)}: unparked ({how})", warning)


def still_running(obj: Object) -> Optional[str]:
    return None if is_parked(obj) else f"{label(NAME, obj)}: not parked (no nodeSelector {'='.join(PARKED)})"


def pods(obj: Object, all_pods: list[dict], replicasets: Any = None) -> list:
    """The Pods of its current template: the controller labels each with the DaemonSet's
    generation it was made from, so an old Pod still being replaced does not count."""
    generation = str((obj.get("metadata") or {}).get("generation", ""))
    current = [p for p in owned(obj, all_pods)
               if ((p.get("metadata") or {}).get("labels") or {}).get("pod-template-generation")
               in (None, generation)]
    return current


KIND = Kind(NAME, "/apis/apps/v1/namespaces/{ns}/daemonsets", verdict=verdict, pods=pods,
            stop=stop, archived=archived, restore=restore, still_running=still_running)
