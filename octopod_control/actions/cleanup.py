"""cleanup: free everything the deployment holds. Octopod calls it once and never retries.

Only what is the staging's (ownership.py): a release that exists without this staging's
mark, or a per-staging namespace someone else made, stops cleanup before anything is
touched. In order: `helm uninstall --keep-history` when the release is still installed;
then whatever of the release is left (objects helm made for it: kept Secrets/ConfigMaps,
`resource-policy: keep` objects; the volumes of its StatefulSets, named
`<claim template>-<statefulset>-<n>` from the release's manifest; in a namespace created
for the staging, also what CLEANUP_SELECTORS and the release's instance label match) is
deleted with kubectl; then helm's records of the release (kept until the end, so a failed
cleanup can be run again and still knows what is ours); the namespace when
CLEANUP_NAMESPACE=true and we created it for this staging; last, remote cleanup over SSH.
Every setting is read and checked first: a bad one is a configuration error before
anything is touched, never a stop halfway. A failed part is reported and the rest still
runs; the whole run is bounded by CLEANUP_TIMEOUT (the remote part gets what is left).
Idempotent.
"""
from __future__ import annotations

import re
import sys
from typing import Callable

from .. import locks, manifest, ownership
from ..args import Deployment
from ..deadline import Deadline
from ..errors import ExternalError, OctopodError
from ..kinds import KINDS
from ..kube import KubeClient, client_for
from ..log import info as log
from ..ownership import NotOurs
from ..release_record import decode, is_gone, newest_item, storage_items, storage_kind
from ..settings import Settings, render_template
from ..target import Target, helm_for, namespace_per_staging, resolve_target
from ..workloads import PATHS, helm_objects, is_helm_record

# What `kubectl get all,pvc,secret,cm` shows, and the rest a chart commonly leaves behind:
# every workload kind, then the others, in the order they are deleted.
LEFTOVER_KINDS = (*(kind.name for kind in KINDS), "ReplicaSet", "Pod", "HorizontalPodAutoscaler",
                  "Service", "Ingress", "ServiceAccount", "ConfigMap", "Secret", "PersistentVolumeClaim")


def cleanup(settings: Settings, deployment: Deployment) -> None:
    """Clean up everything; raise after reporting each part that failed on stderr."""
    failures = cleanup_parts(settings, deployment)
    for failure in failures:
        print(f"cleanup failed: {failure}", file=sys.stderr, flush=True)
    if failures:
        raise ExternalError(f"cleanup of {deployment.name}: {len(failures)} part(s) failed (listed above)")


def cleanup_parts(settings: Settings, deployment: Deployment) -> list[str]:
    """Clean up; returns one message per part that failed ([] when everything is gone).

    Raises NotOurs, before anything is touched, when the release or the per-staging
    namespace exists but is not this staging's.
    """
    # Every setting first: a ConfigError after the uninstall would skip the rest, for good.
    from ..remote_plan import plan

    target = resolve_target(settings, deployment)
    timeout = settings.seconds("CLEANUP_TIMEOUT")
    selectors = pvc_selectors(settings, deployment)
    with_namespace = settings.flag("CLEANUP_NAMESPACE")
    _ = (settings.helm_driver, settings.helm_timeout, settings.kube_timeout)  # used below, checked now
    remote = plan(settings, deployment)
    deadline = Deadline(timeout, "CLEANUP_TIMEOUT")
    log(f"cleanup of {target.namespace}/{target.release}"
        + (f": PVC selectors {' ; '.join(selectors)}" if selectors else ""))
    try:
        with locks.deployment_lock(settings, target, deadline.remaining()):  # create's and archive's lock
            failures = kubernetes_cleanup(settings, target, deployment, selectors, deadline)
    except NotOurs:
        raise
    except OctopodError as exc:  # the lock: another run kept it past the deadline
        failures = [f"Kubernetes part skipped: {exc}"]
    if with_namespace:
        _attempt(failures, f"namespace {target.namespace}",
                 lambda: delete_namespace(settings, target, deployment, deadline))
    _attempt(failures, "remote cleanup", lambda: failures.extend(_remote(remote, deployment, deadline)))
    if not failures:
        log(f"cleanup of {target.namespace}/{target.release}: done, nothing left")
    return failures


def pvc_selectors(settings: Settings, deployment: Deployment) -> list[str]:
    """CLEANUP_SELECTORS (';'-separated templates). What they match is deleted only in a
    namespace created for this staging; in a shared one a label proves nothing."""
    found = [render_template("CLEANUP_SELECTORS", s.strip(), deployment.template_fields())
             for s in settings.text("CLEANUP_SELECTORS").split(";") if s.strip()]
    return list(dict.fromkeys(found))


def kubernetes_cleanup(settings: Settings, target: Target, deployment: Deployment,
                       selectors: list[str], deadline: Deadline) -> list[str]:
    failures: list[str] = []
    try:
        client = client_for(settings)
    except OctopodError as exc:  # a kubeconfig we cannot use
        return [f"Kubernetes part skipped: {exc}"]
    try:
        try:
            items = ownership.verified_release(client, target, deployment, settings.helm_driver)
            own_namespace = ownership.created_for(
                ownership.verified_namespace(settings, client, target, deployment), deployment)
            record = decode(newest_item(items), settings.helm_driver) if items else None
        except NotOurs:
            raise
        except OctopodError as exc:  # nothing else in Kubernetes can work either
            return [f"Kubernetes part skipped: {exc}"]
        if record is None and not own_namespace:
            log(f"cleanup: no release {target.release} in {target.namespace}: nothing there is "
                "known to be this staging's")
            return []
        if record is not None and not is_gone(record):
            _attempt(failures, f"helm uninstall {target.release}", lambda: _uninstall(settings, target, deadline))
        found: dict[str, list[dict]] = {}  # filled as listed: a failure halfway keeps what was found
        _attempt(failures, "listing what is left", lambda: find_leftovers(
            client, target, Volumes(manifest.claim_templates((record or {}).get("manifest")),
                                    first_recorded(client, target, settings.helm_driver) if items else ""),
            [*selectors, f"app.kubernetes.io/instance={target.release}"] if own_namespace else [],
            deadline, found))
    finally:
        client.close()
    _delete_leftovers(settings, target, live_names(found), deadline, failures)
    # Last, and only when every part before succeeded: a failed uninstall may have left objects
    # elsewhere (other namespaces, cluster-scoped ones), and until everything is gone the
    # marked record is what lets a second run find and prove the rest ours.
    if items and not failures:
        _attempt(failures, "deleting helm's records", lambda: _delete_records(settings, target, deadline))
    return failures


class Volumes:
    """The StatefulSet volumes of the release: named `<claim template>-<statefulset>-<n>` by the
    controller, and created since the release's first record. The names come from a manifest
    overrides shape (fullnameOverride=pg), so a name alone could be another party's leftover
    `data-pg-0`; one older than the release cannot be the release's."""

    def __init__(self, claims: list[tuple[str, str]], since: str) -> None:
        self.pattern = re.compile("|".join(f"{re.escape(c)}-{re.escape(s)}-[0-9]+" for c, s in claims)) \
            if claims and since else None
        self.since = since  # an RFC 3339 UTC timestamp: such strings order as the times do

    def ours(self, pvc: dict) -> bool:
        meta = pvc.get("metadata") or {}
        return bool(self.pattern and self.pattern.fullmatch(meta.get("name", ""))
                    and (meta.get("creationTimestamp") or "") >= self.since)


def first_recorded(client: KubeClient, target: Target, driver: str) -> str:
    """When the release's first kept record was made (every revision, superseded ones too)."""
    stamps = [(i.get("metadata") or {}).get("creationTimestamp") or ""
              for i in storage_items(client, target.namespace, target.release, driver, superseded=True)]
    return min((s for s in stamps if s), default="")


def find_leftovers(client: KubeClient, target: Target, volumes: Volumes, selectors: list[str],
                   deadline: Deadline, found: dict[str, list[dict]]) -> None:
    """What is left of the release, by kind, into `found`: objects helm made for it, the
    volumes of its StatefulSets, and what the selectors match (only passed in a namespace
    created for the staging)."""
    ns, release = target.namespace, target.release
    for kind in LEFTOVER_KINDS:
        deadline.check(f"listing {kind} objects")
        # helm's records are not leftovers (they go last), and a namespace may hold many.
        narrow = "owner!=helm" if kind in ("Secret", "ConfigMap") else None
        found[kind] = [o for o in helm_objects(client, ns, release, kind, narrow) if not is_helm_record(o)]
    path = PATHS["PersistentVolumeClaim"].format(ns=ns)
    if volumes.pattern:
        deadline.check("listing PVCs of the StatefulSets")
        found["PersistentVolumeClaim"].extend(o for o in client.list(path) if volumes.ours(o))
    for selector in selectors:
        deadline.check(f"listing PVCs by {selector}")
        found["PersistentVolumeClaim"].extend(client.list(path, label_selector=selector))


def live_names(found: dict[str, list[dict]]) -> dict[str, list[str]]:
    """Names by kind, once each; objects already being deleted are skipped."""
    names = {}
    for kind, objects in found.items():
        live = [o["metadata"]["name"] for o in objects if not o["metadata"].get("deletionTimestamp")]
        if live:
            names[kind] = list(dict.fromkeys(live))
    return names


def _delete_leftovers(settings: Settings, target: Target, leftovers: dict[str, list[str]],
                      deadline: Deadline, failures: list[str]) -> None:
    from ..kubectl import kubectl_for

    kubectl = kubectl_for(settings)
    for kind, names in leftovers.items():
        _attempt(failures, f"deleting {kind} {', '.join(names)}", lambda: (
            deadline.check(f"deleting {kind} objects"),
            kubectl.delete(kind, names, target.namespace, timeout=deadline.remaining())))


def _delete_records(settings: Settings, target: Target, deadline: Deadline) -> None:
    """helm's records of this release (kept by --keep-history), every revision."""
    from ..kubectl import kubectl_for

    deadline.check("deleting helm's records")
    kind = storage_kind(settings.helm_driver)
    kubectl_for(settings).run(["delete", kind.lower(), "--namespace", target.namespace,
                               "--selector", f"owner=helm,name={target.release}",
                               "--ignore-not-found", "--wait=false"], timeout=deadline.remaining())


def _uninstall(settings: Settings, target: Target, deadline: Deadline) -> None:
    # helm's process may take its --timeout plus a grace of as much again: fit both in the deadline.
    helm = helm_for(settings)
    helm.timeout = max(1.0, min(settings.helm_timeout, deadline.remaining() / 2))
    result = helm.uninstall(target.release, target.namespace, keep_history=True)
    if not result.ok and "not found" not in result.output:
        raise ExternalError(f"failed with exit code {result.returncode} (helm's output is above)")


def delete_namespace(settings: Settings, target: Target, deployment: Deployment,
                     deadline: Deadline) -> None:
    """Only a namespace this tool created for this staging: never a shared one, never one
    someone else made or one adopted."""
    template = settings.text("DEPLOY_NAMESPACE")
    if not namespace_per_staging(settings):  # a shared namespace holds other deployments
        raise ExternalError(f"not deleted: CLEANUP_NAMESPACE=true needs a namespace per deployment, "
                            f"but DEPLOY_NAMESPACE={template} has no {{name}}")
    client = client_for(settings)
    try:
        found = ownership.read_namespace(client, target.namespace)
    finally:
        client.close()
    if found is None:
        return
    if not ownership.created_for(found, deployment):
        log(f"cleanup: namespace {target.namespace} kept: octopod-control did not create it for "
            f"staging {deployment.name}")
        return
    from ..kubectl import kubectl_for

    deadline.check("deleting the namespace")
    kubectl_for(settings).delete("Namespace", [target.namespace], None, timeout=deadline.remaining())


def _remote(planned, deployment: Deployment, deadline: Deadline) -> list[str]:
    from ..remote_plan import run_plan

    return [f"remote cleanup: {message}" for message in run_plan(planned, deployment, deadline)]


def _attempt(failures: list[str], what: str, action: Callable[[], object]) -> None:
    """Run one part; a foreseeable failure is recorded and the next part still runs."""
    try:
        action()
    except OctopodError as exc:
        failures.append(f"{what}: {exc}")
