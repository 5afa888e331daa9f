"""archive: free the compute, keep the data; and the restore step create runs afterwards.

ARCHIVE_STRATEGY=scale (default): every Deployment and StatefulSet of the release
goes to 0 replicas and every CronJob is suspended, each by one kubectl merge patch
that also records the previous value in an annotation (atomic: a killed run never
leaves a workload at 0 without its count). Volumes, Secrets, ConfigMaps, Services
and the helm release stay, so a restore keeps chart-generated passwords.
ARCHIVE_STRATEGY=uninstall: `helm uninstall` (kept resources and StatefulSet PVCs stay).

The workloads are found in the cluster (one LIST a kind), not by re-rendering the chart.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .. import locks
from ..args import Deployment
from ..errors import ConfigError, ExternalError
from ..log import info as log
from ..log import warn
from ..settings import Settings
from ..target import Target, helm_for, resolve_target

if TYPE_CHECKING:
    from ..kube import KubeClient

# The API reader (ssl, yaml: ~30 ms of imports) is imported where used: create imports this
# module on every run and reads the cluster in the background while helm works (RestoreStep).

ARCHIVED_REPLICAS = "octopod.io/archived-replicas"
ARCHIVED_SUSPEND = "octopod.io/archived-suspend"
SCALED_KINDS = ("Deployment", "StatefulSet")
STRATEGIES = ("scale", "uninstall")


def strategy(settings: Settings) -> str:
    value = (settings.text("ARCHIVE_STRATEGY") or "scale").lower()
    if value not in STRATEGIES:
        raise ConfigError(f"ARCHIVE_STRATEGY={value!r}: expected scale or uninstall")
    return value


def archive(settings: Settings, deployment: Deployment) -> None:
    target = resolve_target(settings, deployment)
    how = strategy(settings)
    with release_lock(settings, target):
        if how == "uninstall":
            uninstall_release(settings, target)
        else:
            scale_down(settings, target)


def release_lock(settings: Settings, target: Target):
    """The lock create holds, so an archive never interleaves with a create on this host."""
    from ..helm import process_timeout

    scope = settings.text("KUBECONFIG") or "in-cluster"
    return locks.release_lock(scope, target.release, target.namespace,
                              2 * process_timeout(settings.helm_timeout))


# -- scale
def scale_down(settings: Settings, target: Target) -> None:
    from ..kube import client_for
    from ..workloads import release_objects

    kinds = (*SCALED_KINDS, "CronJob", "DaemonSet")
    client = client_for(settings)
    try:
        found = {kind: release_objects(client, target.namespace, target.release, kind) for kind in kinds}
        installed = any(found.values()) or _installed(client, settings, target)
    finally:
        client.close()
    where = f"{target.namespace}/{target.release}"
    if not installed:
        log(f"archive: release {where} not found (nor its namespace, maybe): nothing to archive")
        return
    from ..kubectl import kubectl_for

    kubectl = kubectl_for(settings)
    changed = 0
    for kind in SCALED_KINDS:
        for obj in found[kind]:
            changed += _scale_to_zero(kubectl, kind, obj, target.namespace)
    for obj in found["CronJob"]:
        changed += _suspend(kubectl, obj, target.namespace)
    for obj in found["DaemonSet"]:
        warn(f"archive: daemonset/{_name(obj)} cannot be scaled to 0; its pods keep running "
             "(ARCHIVE_STRATEGY=uninstall removes it)")
    log(f"archive: {where} scaled down ({changed} change(s)); volumes, secrets and the release stay")


def _scale_to_zero(kubectl, kind: str, obj: dict, namespace: str) -> int:
    replicas = (obj.get("spec") or {}).get("replicas", 1)  # the API's default when unset
    if not replicas:
        recorded = _annotations(obj).get(ARCHIVED_REPLICAS)
        log(f"archive: {kind.lower()}/{_name(obj)} already at 0"
            + (f" (records {recorded})" if recorded else ""))
        return 0
    kubectl.patch(kind, _name(obj), namespace, {
        "metadata": {"annotations": {ARCHIVED_REPLICAS: str(replicas)}},
        "spec": {"replicas": 0}})
    return 1


def _suspend(kubectl, obj: dict, namespace: str) -> int:
    if (obj.get("spec") or {}).get("suspend"):
        log(f"archive: cronjob/{_name(obj)} already suspended")
        return 0
    kubectl.patch("CronJob", _name(obj), namespace, {
        "metadata": {"annotations": {ARCHIVED_SUSPEND: "false"}},
        "spec": {"suspend": True}})
    return 1


# -- uninstall
def uninstall_release(settings: Settings, target: Target) -> None:
    from ..kube import client_for

    where = f"{target.namespace}/{target.release}"
    client = client_for(settings)
    try:
        installed = _installed(client, settings, target)
    finally:
        client.close()
    if not installed:
        log(f"archive: release {where} is not installed: nothing to archive")
        return
    result = helm_for(settings).uninstall(target.release, target.namespace)
    if not result.ok:
        if "not found" in result.output:
            log(f"archive: release {where} was already gone")
            return
        raise ExternalError(f"helm uninstall {target.release}: failed with exit code "
                            f"{result.returncode} (helm's output is above)")
    log(f"archive: release {where} uninstalled; kept resources and StatefulSet volumes stay")


def _installed(client: "KubeClient", settings: Settings, target: Target) -> bool:
    from ..release_record import current_release

    return current_release(client, target.namespace, target.release, settings.helm_driver) is not None


# -- restore (called by create after a successful helm upgrade)
# kind -> (annotation, spec field, the value archive set, the recorded text parsed)
RESTORED = {
    "Deployment": (ARCHIVED_REPLICAS, "replicas", 0, lambda text: _count(text)),
    "StatefulSet": (ARCHIVED_REPLICAS, "replicas", 0, lambda text: _count(text)),
    "CronJob": (ARCHIVED_SUSPEND, "suspend", True, lambda text: text == "true"),
}


def restore_recorded_replicas(settings: Settings, target: Target) -> None:
    """Bring back what archive recorded, where the chart says nothing, then drop the record.

    helm's upgrade already set every field the chart renders: helm 3 (and helm 4 with
    client-side apply) by a three-way merge against the live object, so a chart's
    `replicas: 2` comes back even when the manifest is unchanged; helm 4's server-side
    apply re-applies it. A field the chart does not render is left as it is (0, or
    suspended): that is what the recorded value fills in. Costs one LIST per kind
    when nothing was archived.
    """
    from ..kube import client_for

    client = client_for(settings)
    try:
        archived = archived_workloads(client, target)
        if not archived:
            return
        from ..release_record import current_release

        record = current_release(client, target.namespace, target.release, settings.helm_driver)
    finally:
        client.close()
    from ..kubectl import kubectl_for

    rendered = rendered_specs(record)
    kubectl = kubectl_for(settings)
    for kind, obj in archived:
        _restore_one(kubectl, kind, obj, target.namespace, rendered)
    log(f"restore: recorded values of {len(archived)} workload(s) of {target.release} handled")


def archived_workloads(client: "KubeClient", target: Target) -> list[tuple[str, dict]]:
    """(kind, object) of each workload of the release that carries an archive record."""
    from ..workloads import release_objects

    return [(kind, obj) for kind, (annotation, *_) in RESTORED.items()
            for obj in release_objects(client, target.namespace, target.release, kind)
            if annotation in _annotations(obj)]


class RestoreStep:
    """restore_recorded_replicas, split around helm's upgrade so that create does not wait for it.

    Started before the upgrade, it looks (in a thread, while helm works) for archive records;
    `finish()` after a successful upgrade does the restore only when there were some, reading
    the workloads again since helm has just changed them.
    """

    def __init__(self, settings: Settings, target: Target) -> None:
        self.settings, self.target = settings, target
        self._archived: bool | None = None  # None: unknown (the look-up failed)
        self._thread = threading.Thread(target=self._look, name="restore-prefetch")
        self._thread.start()

    def _look(self) -> None:
        try:
            from ..kube import client_for

            client = client_for(self.settings)
            try:
                self._archived = bool(archived_workloads(client, self.target))
            finally:
                client.close()
        except Exception:  # noqa: BLE001 - finish() reads again and reports
            self._archived = None

    def finish(self) -> None:
        self._thread.join()
        if self._archived is not False:
            restore_recorded_replicas(self.settings, self.target)


def rendered_specs(record: dict | None) -> dict[tuple[str, str], dict] | None:
    """(kind, name) -> spec as the release's manifest renders it; None when unreadable."""
    if not record or not record.get("manifest"):
        return None
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = list(yaml.load_all(record["manifest"], Loader=loader))
    except yaml.YAMLError:
        return None
    return {(d.get("kind"), (d.get("metadata") or {}).get("name")): d.get("spec") or {}
            for d in docs if isinstance(d, dict)}


def _restore_one(kubectl, kind: str, obj: dict, namespace: str,
                 rendered: dict[tuple[str, str], dict] | None) -> None:
    annotation, field, archived_value, parse = RESTORED[kind]
    name, text = _name(obj), _annotations(obj)[annotation]
    drop: dict[str, Any] = {"metadata": {"annotations": {annotation: None}}}
    what = f"{kind.lower()}/{name}"
    try:
        value = parse(text)
    except ValueError:
        warn(f"restore: {what}: {annotation}={text!r} is not a value; left as helm set it")
        kubectl.patch(kind, name, namespace, drop)
        return
    live = (obj.get("spec") or {}).get(field)
    if rendered is None:  # no manifest to ask: fill in only what archive left behind
        chart_sets = live is not None and live != archived_value
    else:
        chart_sets = field in rendered.get((kind, name), {})
    if chart_sets:
        log(f"restore: {what}: the chart sets {field} ({live}); recorded {text} not needed")
        kubectl.patch(kind, name, namespace, drop)
        return
    log(f"restore: {what}: the chart does not set {field}; restoring the recorded {text}")
    kubectl.patch(kind, name, namespace, {**drop, "spec": {field: value}})


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "?")


def _annotations(obj: dict) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}
