"""The release's objects as they are in the cluster: one LIST a kind, filtered locally.

Helm annotates every object it manages with the release name; listing a kind
in the namespace and filtering here keeps the request count constant however
many workloads the release has (check's cost budget depends on it).
"""
from __future__ import annotations

from .kinds import KINDS
from .kinds.pods import selected
from .kube import KubeClient, belongs_to_release

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
