"""adopt: mark a release (and a per-staging namespace) made before ownership marks as this staging's.

An operator's explicit act, never implied by another operation: create, update,
archive and cleanup refuse a release or namespace without this staging's mark, and
say to run this. It labels the release's newest revision record and, when each staging
has its own namespace, the namespace (annotated `adopted`: cleanup never deletes an
adopted namespace, since the tool did not create it). Nothing is deployed or stopped.
Refuses what carries another staging's mark. Idempotent.

`adopt_all` does the same for every unmarked release of a shared namespace at once (after an
upgrade to a version with ownership marks), where RELEASE_NAME is `{name}` so that a release's
name is its staging's: it lists what it would do and changes nothing without `--yes`.
"""
from __future__ import annotations

from .. import ownership
from ..args import NAME_PATTERN, Deployment
from ..errors import ConfigError, ExternalError
from ..kube import client_for
from ..kubectl import kubectl_for
from ..log import info as log
from ..release_record import revision, newest_item, storage_items, storage_kind
from ..workloads import PATHS
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


def adopt_all(settings: Settings, namespace: str, apply: bool) -> list[str]:
    """Mark every unmarked release of the shared namespace as the staging of its own name.

    Returns the releases adopted (or, without apply, that would be). Only where a release's
    name is its staging's (RELEASE_NAME={name}) and stagings share the namespace.
    """
    if settings.text("RELEASE_NAME") != "{name}" or namespace_per_staging(settings):
        raise ConfigError("adopt --all-releases needs RELEASE_NAME={name} and a shared DEPLOY_NAMESPACE "
                          "(a release's name must be its staging's); adopt each: invoke adopt --name x")
    target_namespace = settings.render("DEPLOY_NAMESPACE", {"namespace": namespace})
    kind = storage_kind(settings.helm_driver)
    client = client_for(settings)
    try:
        records = client.list(PATHS[kind].format(ns=target_namespace), label_selector="owner=helm")
    finally:
        client.close()
    newest: dict[str, dict] = {}
    for item in records:
        release = ((item.get("metadata") or {}).get("labels") or {}).get("name", "")
        if release and (release not in newest or revision(item) > revision(newest[release])):
            newest[release] = item
    chosen = [r for r, item in sorted(newest.items())
              if ownership.marked_staging(item.get("metadata")) is None and NAME_PATTERN.fullmatch(r)]
    for release in chosen:
        if apply:
            _mark_release(settings, Target(release, target_namespace), newest[release],
                          Deployment(release, namespace))
        else:
            log(f"adopt: would mark release {target_namespace}/{release} as staging {release}'s")
    if not apply:
        log(f"adopt: {len(chosen)} release(s) to adopt; run again with --yes to mark them")
    return chosen
