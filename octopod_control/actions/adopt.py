"""adopt: mark a release (and a per-staging namespace) made before ownership marks as this staging's.

An operator's explicit act, never implied by another operation: create, update,
archive and cleanup refuse a release or namespace without this staging's mark, and
say to run this. It labels the release's newest revision record and, when each staging
has its own namespace, the namespace (annotated `adopted`: cleanup never deletes an
adopted namespace, since the tool did not create it). Nothing is deployed or stopped.
Refuses what carries another staging's mark. Idempotent.
"""
from __future__ import annotations

from .. import ownership
from ..args import Deployment
from ..errors import ExternalError
from ..kube import client_for
from ..kubectl import kubectl_for
from ..log import info as log
from ..release_record import newest_item, storage_items, storage_kind
from ..settings import Settings
from ..target import Target, namespace_per_staging, resolve_target


def adopt(settings: Settings, deployment: Deployment) -> None:
    target = resolve_target(settings, deployment)
    client = client_for(settings)
    try:
        newest = newest_item(storage_items(client, target.namespace, target.release,
                                           settings.helm_driver))
        namespace = (ownership.read_namespace(client, target.namespace)
                     if namespace_per_staging(settings) else None)
    finally:
        client.close()
    if newest is None and namespace is None:
        raise ExternalError(f"adopt: no release {target.release} in {target.namespace} "
                            "(nor a namespace of its own): nothing to adopt")
    for found, what in ((newest, f"release {target.namespace}/{target.release}"),
                        (namespace, f"namespace {target.namespace}")):
        owner = ownership.marked_staging((found or {}).get("metadata"))
        if found is not None and owner not in (None, deployment.name):
            raise ownership.NotOurs(f"adopt: {what} belongs to staging {owner}, not {deployment.name}")
    if newest is not None:
        _mark_release(settings, target, newest, deployment)
    if namespace is not None:
        _mark_namespace(settings, target, namespace, deployment)


def _mark_release(settings: Settings, target: Target, storage: dict, deployment: Deployment) -> None:
    """helm reads custom labels back from the storage object and keeps them on upgrade."""
    labels = [f"{k}={v}" for k, v in ownership.release_labels(deployment).items()]
    kind = storage_kind(settings.helm_driver).lower()
    kubectl_for(settings).run(["label", kind, storage["metadata"]["name"], "--namespace",
                               target.namespace, "--overwrite", *labels])
    log(f"adopt: release {target.namespace}/{target.release} is now staging {deployment.name}'s")


def _mark_namespace(settings: Settings, target: Target, namespace: dict, deployment: Deployment) -> None:
    meta = namespace.get("metadata") or {}
    if ownership.marked_staging(meta) == deployment.name:
        log(f"adopt: namespace {target.namespace} is already staging {deployment.name}'s")
        return
    wanted = ownership.namespace_metadata(deployment, ownership.ADOPTED)
    kubectl = kubectl_for(settings)
    kubectl.patch("Namespace", target.namespace, None, {"metadata": wanted})
    log(f"adopt: namespace {target.namespace} is now staging {deployment.name}'s "
        "(adopted: cleanup will not delete it)")
