"""The release's objects as they are in the cluster: one LIST a kind, filtered locally.

Helm annotates every object it manages with the release name; listing a kind
in the namespace and filtering here keeps the request count constant however
many workloads the release has (check's cost budget depends on it).
`release_workloads` is what check judges and create's rollout follow (rollout.py) watches.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from .kinds import FAILED, JUDGED, KINDS, Kind, Verdict
from .kinds.pods import selected
from .kube import KubeClient, belongs_to_release

if TYPE_CHECKING:
    from .target import Target

Declared = list[tuple[str, "str | None", "str | None"]]  # (kind, name, namespace) from the manifest

# The API paths of the kinds besides the workloads (whose paths are in their kinds/ modules).
OTHER_PATHS = {
    "Pod": "/api/v1/namespaces/{ns}/pods",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
    "Service": "/api/v1/namespaces/{ns}/services",
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "HorizontalPodAutoscaler": "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
}
PATHS = {**{kind.name: kind.path for kind in KINDS}, **OTHER_PATHS}


def release_objects(client: KubeClient, namespace: str, release: str, kind: str,
                    label_selector: str | None = None) -> list[dict]:
    """Objects of one kind that belong to the release (by helm's annotation or instance label).

    A label_selector narrows the LIST on the server (a smaller answer in a namespace many
    releases share); the caller then knows objects without those labels were not seen.
    """
    items = client.list(PATHS[kind].format(ns=namespace), label_selector=label_selector)
    return [item for item in items if belongs_to_release(item, release)]


def release_workloads(client: KubeClient, target: "Target", declared: Declared) -> list[tuple[Kind, dict]]:
    """(kind, object) of each judged workload of the release in the cluster, helm's hooks left out.

    One LIST a kind the release's manifest declares (every judged kind when it cannot be
    read: a manifest we cannot read must not hide workloads). Charts label their objects
    app.kubernetes.io/instance=<release> by convention, and a LIST by that label stays
    small in a namespace many stagings share; the whole kind is listed only when that
    misses a workload the manifest declares.
    """
    kinds = [k for k in JUDGED if any(d[0] == k.name for d in declared)] if declared else JUDGED
    found = []
    for kind in kinds:
        names = [name for k, name, ns in declared if k == kind.name and ns in (None, target.namespace)]
        objects = None
        if names and all(names):
            selector = f"app.kubernetes.io/instance={target.release}"
            narrowed = release_objects(client, target.namespace, target.release, kind.name, selector)
            if set(names) <= {(o.get("metadata") or {}).get("name") for o in narrowed}:
                objects = narrowed
        if objects is None:
            objects = release_objects(client, target.namespace, target.release, kind.name)
        found += [(kind, obj) for obj in objects if not is_hook(obj)]
    return found


def is_hook(obj: Mapping[str, Any]) -> bool:
    """helm hooks (migrations, tests) are not part of the running release."""
    return "helm.sh/hook" in ((obj.get("metadata") or {}).get("annotations") or {})


def missing(declared: Declared, present: set[tuple[str, str]], namespace: str) -> list[Verdict]:
    """Workloads the release's manifest declares in this namespace that the cluster lacks
    (present: the (kind, name) pairs found).

    A missing Deployment, StatefulSet or DaemonSet runs nothing. A kind that may vanish is
    not among them: a Job that finished is deleted by its ttlSecondsAfterFinished (or by
    hand) while the release still declares it; it ran, and a failed one is judged while it
    exists.
    """
    kinds = {k.name for k in JUDGED if not k.may_vanish}
    return [Verdict(kind, name, FAILED, "", ["in the release but not in the cluster"])
            for kind, name, ns in declared
            if kind in kinds and name and ns in (None, namespace) and (kind, name) not in present]


def helm_objects(client: KubeClient, namespace: str, release: str, kind: str,
                 label_selector: str | None = None) -> list[dict]:
    """Objects of one kind that helm manages for exactly this release: what archive, restore
    and cleanup may change (a label is not proof of ownership; helm's two annotations are).
    A label_selector narrows the LIST on the server (e.g. owner!=helm: not helm's records)."""
    from .ownership import helm_made  # here: check lists by labels and does without it

    items = client.list(PATHS[kind].format(ns=namespace), label_selector=label_selector)
    return [item for item in items if helm_made(item, release, namespace)]


def is_helm_record(obj: dict) -> bool:
    """helm's own release storage (a Secret or ConfigMap labelled owner=helm)."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get("owner") == "helm"


def release_pods(pods: list[dict], release: str, namespace: str, workloads: list[dict]) -> list[dict]:
    """Pods of the release: picked by one of its workloads' selectors, or made by helm for it.
    Not by a label alone: another team's Pod may carry app.kubernetes.io/instance=<release>."""
    from .ownership import helm_made

    picked = {id(p) for w in workloads for p in selected(w, pods)}
    return [p for p in pods if id(p) in picked or helm_made(p, release, namespace)]
