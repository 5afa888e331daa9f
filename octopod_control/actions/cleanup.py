"""cleanup: free everything the deployment holds. Octopod calls it once and never retries.

In order: `helm uninstall` when the release is still installed; then whatever of the
release is left (kept Secrets/ConfigMaps, `resource-policy: keep` objects, PVCs made
from volumeClaimTemplates or matched by the PVC selectors, helm's own records of
this release) is deleted with kubectl; the namespace when CLEANUP_NAMESPACE=true;
last, remote cleanup over SSH. Every setting is read and checked first: a bad one
is a configuration error before anything is touched, never a stop halfway. A failed
part is reported and the rest still runs; the whole run is bounded by CLEANUP_TIMEOUT
(the remote part gets what is left). Idempotent.
"""
from __future__ import annotations

import sys
from typing import Callable

from .. import locks
from ..deadline import Deadline
from ..args import Deployment
from ..errors import ExternalError, OctopodError
from ..kube import KubeClient, client_for
from ..log import info as log
from ..release_record import is_installed
from ..settings import Settings, render_template
from ..target import Target, helm_for, resolve_target
from ..workloads import PATHS, is_helm_record, release_objects

# What `kubectl get all,pvc,secret,cm` shows, and the rest a chart commonly leaves behind.
LEFTOVER_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job", "ReplicaSet", "Pod",
                  "HorizontalPodAutoscaler", "Service", "Ingress", "ServiceAccount", "ConfigMap",
                  "Secret", "PersistentVolumeClaim")


def cleanup(settings: Settings, deployment: Deployment) -> None:
    """Clean up everything; raise after reporting each part that failed on stderr."""
    failures = cleanup_parts(settings, deployment)
    for failure in failures:
        print(f"cleanup failed: {failure}", file=sys.stderr, flush=True)
    if failures:
        raise ExternalError(f"cleanup of {deployment.name}: {len(failures)} part(s) failed (listed above)")


def cleanup_parts(settings: Settings, deployment: Deployment) -> list[str]:
    """Clean up; returns one message per part that failed ([] when everything is gone)."""
    # Every setting first: a ConfigError after the uninstall would skip the rest, for good.
    from .remote_cleanup import plan

    target = resolve_target(settings, deployment)
    timeout = settings.seconds("CLEANUP_TIMEOUT", 300)
    selectors = pvc_selectors(settings, deployment, target)
    with_namespace = settings.flag("CLEANUP_NAMESPACE")
    _ = (settings.helm_driver, settings.helm_timeout, settings.kube_timeout)  # used below, checked now
    remote = plan(settings, deployment)
    deadline = Deadline(timeout, "CLEANUP_TIMEOUT")
    log(f"cleanup of {target.namespace}/{target.release}: PVC selectors {' ; '.join(selectors)}")
    try:
        with locks.deployment_lock(settings, target, deadline.remaining()):  # create's and archive's lock
            failures = kubernetes_cleanup(settings, target, selectors, deadline)
    except OctopodError as exc:  # the lock: another run kept it past the deadline
        failures = [f"Kubernetes part skipped: {exc}"]
    if with_namespace:
        _attempt(failures, f"namespace {target.namespace}",
                 lambda: delete_namespace(settings, target, deadline))
    _attempt(failures, "remote cleanup", lambda: failures.extend(_remote(remote, deployment, deadline)))
    if not failures:
        log(f"cleanup of {target.namespace}/{target.release}: done, nothing left")
    return failures


def pvc_selectors(settings: Settings, deployment: Deployment, target: Target) -> list[str]:
    """The release's instance label and app=<name>, then CLEANUP_SELECTORS (';'-separated templates)."""
    extra = [render_template("CLEANUP_SELECTORS", s.strip(), deployment.template_fields())
             for s in settings.text("CLEANUP_SELECTORS").split(";") if s.strip()]
    found = [f"app.kubernetes.io/instance={target.release}", f"app={deployment.name}", *extra]
    return list(dict.fromkeys(found))


def kubernetes_cleanup(settings: Settings, target: Target, selectors: list[str],
                       deadline: Deadline) -> list[str]:
    failures: list[str] = []
    try:
        client = client_for(settings)
    except OctopodError as exc:  # a kubeconfig we cannot use
        return [f"Kubernetes part skipped: {exc}"]
    try:
        try:
            installed = is_installed(client, target, settings.helm_driver)
        except OctopodError as exc:  # nothing else in Kubernetes can work either
            return [f"Kubernetes part skipped: {exc}"]
        if installed:
            _attempt(failures, f"helm uninstall {target.release}", lambda: _uninstall(settings, target, deadline))
        found: dict[str, list[dict]] = {}  # filled as listed: a failure halfway keeps what was found
        _attempt(failures, "listing what is left",
                 lambda: find_leftovers(client, target, selectors, deadline, found))
    finally:
        client.close()
    _delete_leftovers(settings, target, live_names(found), deadline, failures)
    return failures


def find_leftovers(client: KubeClient, target: Target, selectors: list[str], deadline: Deadline,
                   found: dict[str, list[dict]]) -> None:
    """What is left of the release, by kind, into `found`."""
    ns, release = target.namespace, target.release
    for kind in LEFTOVER_KINDS:
        deadline.check(f"listing {kind} objects")
        found[kind] = [o for o in release_objects(client, ns, release, kind) if not is_helm_record(o)]
    for selector in selectors:  # PVCs by label: volumeClaimTemplates copy the template's labels
        deadline.check(f"listing PVCs by {selector}")
        path = PATHS["PersistentVolumeClaim"].format(ns=ns)
        found.setdefault("PersistentVolumeClaim", []).extend(client.list(path, label_selector=selector))
    for kind in ("Secret", "ConfigMap"):  # helm's records of this release (e.g. --keep-history)
        deadline.check("listing helm's records")
        found.setdefault(kind, []).extend(
            client.list(PATHS[kind].format(ns=ns), label_selector=f"owner=helm,name={release}"))


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


def _uninstall(settings: Settings, target: Target, deadline: Deadline) -> None:
    # helm's process may take its --timeout plus a grace of as much again: fit both in the deadline.
    helm = helm_for(settings)
    helm.timeout = max(1.0, min(settings.helm_timeout, deadline.remaining() / 2))
    result = helm.uninstall(target.release, target.namespace)
    if not result.ok and "not found" not in result.output:
        raise ExternalError(f"failed with exit code {result.returncode} (helm's output is above)")


def delete_namespace(settings: Settings, target: Target, deadline: Deadline) -> None:
    template = settings.text("DEPLOY_NAMESPACE") or "{namespace}"
    if "{name}" not in template:  # a shared namespace holds other deployments: never delete it
        raise ExternalError(f"not deleted: CLEANUP_NAMESPACE=true needs a namespace per deployment, "
                            f"but DEPLOY_NAMESPACE={template} has no {{name}}")
    from ..kubectl import kubectl_for

    deadline.check("deleting the namespace")
    kubectl_for(settings).delete("Namespace", [target.namespace], None, timeout=deadline.remaining())


def _remote(planned, deployment: Deployment, deadline: Deadline) -> list[str]:
    from .remote_cleanup import run_plan

    return [f"remote cleanup: {message}" for message in run_plan(planned, deployment, deadline)]


def _attempt(failures: list[str], what: str, action: Callable[[], object]) -> None:
    """Run one part; a foreseeable failure is recorded and the next part still runs."""
    try:
        action()
    except OctopodError as exc:
        failures.append(f"{what}: {exc}")
