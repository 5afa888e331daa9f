"""archive_check: is the compute really gone? One pass, no waiting (Octopod polls it).

Archived means: no Pod of the release is Running or Pending, and with
ARCHIVE_STRATEGY=scale every Deployment/StatefulSet asks for 0 replicas, every
CronJob and every unfinished Job is suspended and every DaemonSet is parked, or
with uninstall the release is gone. An absent deployment is archived. Reads only
(one LIST a kind, no helm or kubectl process).
"""
from __future__ import annotations

from ..args import Deployment
from ..errors import ExternalError
from ..log import info
from ..kube import client_for
from ..release_record import current_release
from ..settings import Settings
from ..target import resolve_target
from ..workloads import PATHS, helm_objects, release_pods
from .archive import PARKED, SCALED_KINDS, STOPPED_KINDS, is_parked, job_finished, strategy

RUNNING = ("Running", "Pending")
WORKLOAD_KINDS = STOPPED_KINDS


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
    how = strategy(settings)
    client = client_for(settings)
    try:
        # The workloads archive stops (helm's own for the release), and every Pod they or the
        # release's labels name: after an uninstall only the labels are left to link a Pod.
        found = {k: helm_objects(client, target.namespace, target.release, k) for k in WORKLOAD_KINDS}
        pods = client.list(PATHS["Pod"].format(ns=target.namespace))
        record = (current_release(client, target.namespace, target.release, settings.helm_driver)
                  if how == "uninstall" else None)
    finally:
        client.close()
    lines = []
    if record is not None:
        lines.append(f"release {target.release}: still installed "
                     f"({(record.get('info') or {}).get('status', 'unknown')})")
    if how == "scale":
        lines += _unscaled(found)
    workloads = [w for kind in WORKLOAD_KINDS for w in found[kind]]
    for pod in release_pods(pods, target.release, workloads):
        phase = (pod.get("status") or {}).get("phase")
        if phase in RUNNING:
            lines.append(f"pod/{pod['metadata']['name']}: {phase}")
    return lines


def _unscaled(found: dict[str, list[dict]]) -> list[str]:
    lines = []
    for kind in SCALED_KINDS:
        for obj in found[kind]:
            replicas = (obj.get("spec") or {}).get("replicas", 1)
            if replicas:
                lines.append(f"{kind.lower()}/{obj['metadata']['name']}: spec.replicas is {replicas}, not 0")
    for obj in found["CronJob"]:
        if not (obj.get("spec") or {}).get("suspend"):
            lines.append(f"cronjob/{obj['metadata']['name']}: not suspended")
    for obj in found["Job"]:
        if not job_finished(obj) and not (obj.get("spec") or {}).get("suspend"):
            lines.append(f"job/{obj['metadata']['name']}: not finished and not suspended")
    for obj in found["DaemonSet"]:
        if not is_parked(obj):
            lines.append(f"daemonset/{obj['metadata']['name']}: not parked "
                         f"(no nodeSelector {'='.join(PARKED)})")
    return lines
