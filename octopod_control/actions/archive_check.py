"""archive_check: is the compute really gone? One pass, no waiting (Octopod polls it).

Archived means: no Pod of the release is Running or Pending (a Pod of the release is one
its workloads select, those helm made for it or those its manifest declares, or one helm
made itself; a label alone is not enough in a namespace others share), and with
ARCHIVE_STRATEGY=scale every workload is as archive leaves it (its kind's
`still_running` says nothing: Deployments/StatefulSets ask for 0 replicas, CronJobs
and unfinished Jobs are suspended, DaemonSets are parked), or with uninstall the
release is gone. An absent deployment is archived. Reads only
(one LIST a kind, no helm or kubectl process).
"""
from __future__ import annotations

from ..args import Deployment
from ..errors import ExternalError
from .. import manifest
from ..kinds import BY_NAME, KINDS
from ..kube import client_for
from ..log import info
from ..release_record import decode, is_gone, newest_item, storage_items
from ..settings import Settings
from ..target import resolve_target
from ..workloads import PATHS, helm_objects, release_pods

RUNNING = ("Running", "Pending")
MAX_SHOWN = 20


def archive_check(settings: Settings, deployment: Deployment) -> None:
    """Return when the deployment is archived; otherwise raise, listing what still runs."""
    lines = still_running(settings, deployment)
    if lines:
        shown = lines[:MAX_SHOWN] + ([f"... and {len(lines) - MAX_SHOWN} more"]
                                     if len(lines) > MAX_SHOWN else [])
        raise ExternalError("not archived yet:\n" + "\n".join(f"  {line}" for line in shown))
    info(f"{deployment.name}: archived, no compute left")


def still_running(settings: Settings, deployment: Deployment) -> list[str]:
    """What still holds compute, one line each; [] when the deployment is archived."""
    target = resolve_target(settings, deployment)
    how = settings.choice("ARCHIVE_STRATEGY")
    client = client_for(settings)
    try:
        found = [(kind, helm_objects(client, target.namespace, target.release, kind.name)) for kind in KINDS]
        pods = client.list(PATHS["Pod"].format(ns=target.namespace))
        items = storage_items(client, target.namespace, target.release, settings.helm_driver)
        record = decode(newest_item(items), settings.helm_driver) if items else None
    finally:
        client.close()
    lines = []
    if how == "uninstall" and record is not None and not is_gone(record):
        lines.append(f"release {target.release}: still installed "
                     f"({(record.get('info') or {}).get('status', 'unknown')})")
    if how == "scale":
        for kind, objects in found:
            lines += [line for line in map(kind.still_running, objects) if line]
    workloads = [w for _, objects in found for w in objects] + declared_workloads(record)
    for pod in release_pods(pods, target.release, target.namespace, workloads):
        phase = (pod.get("status") or {}).get("phase")
        if phase in RUNNING:
            lines.append(f"pod/{pod['metadata']['name']}: {phase}")
    return lines


def declared_workloads(record: dict | None) -> list[dict]:
    """The workloads the release's manifest declares, as far as their pod selectors go: after
    an uninstall (its record kept) they are gone, and their Pods may still be terminating."""
    specs = manifest.specs((record or {}).get("manifest")) or {}
    return [{"spec": spec} for (kind, _), spec in specs.items() if kind in BY_NAME and isinstance(spec, dict)]
