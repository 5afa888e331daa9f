"""archive: free the compute, keep the data.

ARCHIVE_STRATEGY=scale (default): every workload helm made for the release is stopped
the way its kind is (kinds/: Deployments and StatefulSets go to 0 replicas, CronJobs and
unfinished Jobs are suspended, DaemonSets are parked on a node selector no node matches),
each by one kubectl merge patch that also records the previous value in an annotation
(atomic: a killed run never leaves a workload stopped without its record). Volumes,
Secrets, ConfigMaps, Services and the helm release stay, so a restore (create again,
restoring.py) keeps chart-generated passwords.
ARCHIVE_STRATEGY=uninstall: `helm uninstall` (kept resources and StatefulSet PVCs stay).

The workloads are found in the cluster (one LIST a kind), not by re-rendering the chart.
"""
from __future__ import annotations

from .. import locks, ownership
from ..args import Deployment
from ..errors import ExternalError
from ..log import info as log
from ..settings import Settings
from ..target import Target, helm_for, resolve_target


def archive(settings: Settings, deployment: Deployment) -> None:
    target = resolve_target(settings, deployment)
    how = settings.choice("ARCHIVE_STRATEGY")
    with locks.deployment_lock(settings, target):  # never interleaved with a create
        live = live_release(settings, target, deployment)
        if how == "uninstall":
            uninstall_release(settings, target, live)
        else:
            scale_down(settings, target, live)


def live_release(settings: Settings, target: Target, deployment: Deployment) -> bool:
    """Whether the release runs, after checking that it, and a per-staging namespace, are this
    staging's (NotOurs otherwise: nothing is touched)."""
    from ..kube import client_for
    from ..release_record import current_and_deployed

    client = client_for(settings)
    try:
        items = ownership.verified_release(client, target, deployment, settings.helm_driver)
        ownership.verified_namespace(settings, client, target, deployment)
        record, _ = current_and_deployed(client, target.namespace, target.release,
                                         settings.helm_driver, items)
    finally:
        client.close()
    return record is not None


# -- scale
def scale_down(settings: Settings, target: Target, live: bool) -> None:
    """Stop every workload helm made for the (verified) release; nothing else is touched."""
    where = f"{target.namespace}/{target.release}"
    if not live:
        log(f"archive: release {where} not found (nor its namespace, maybe): nothing to archive")
        return
    from ..kinds import KINDS
    from ..kinds.base import name_of
    from ..kube import client_for
    from ..workloads import helm_objects

    client = client_for(settings)
    try:
        found = [(kind, helm_objects(client, target.namespace, target.release, kind.name))
                 for kind in KINDS]
    finally:
        client.close()
    from ..kubectl import kubectl_for

    kubectl = kubectl_for(settings)
    changed = 0
    for kind, objects in found:
        for obj in objects:
            change = kind.stop(obj)
            if change.note:
                log(f"archive: {change.note}")
            if change.patch:
                kubectl.patch(kind.name, name_of(obj), target.namespace, change.patch)
                changed += 1
    log(f"archive: {where} scaled down ({changed} change(s)); volumes, secrets and the release stay")


# -- uninstall
def uninstall_release(settings: Settings, target: Target, live: bool) -> None:
    """helm uninstall --keep-history: the marked record stays, so cleanup still knows what
    was the staging's (its volumes), and create installs it again."""
    where = f"{target.namespace}/{target.release}"
    if not live:
        log(f"archive: release {where} is not installed: nothing to archive")
        return
    result = helm_for(settings).uninstall(target.release, target.namespace, keep_history=True)
    if not result.ok:
        if "not found" in result.output:
            log(f"archive: release {where} was already gone")
            return
        raise ExternalError(f"helm uninstall {target.release}: failed with exit code "
                            f"{result.returncode} (helm's output is above)")
    log(f"archive: release {where} uninstalled; kept resources and StatefulSet volumes stay")
