"""archive: free the compute, keep the data; and the restore step create runs afterwards.

ARCHIVE_STRATEGY=scale (default): every Deployment and StatefulSet of the release
goes to 0 replicas, every CronJob and every unfinished Job is suspended, and every
DaemonSet is parked (a node selector no node matches: octopod.io/archived=true),
each by one kubectl merge patch that also records the previous value in an
annotation (atomic: a killed run never leaves a workload stopped without its
record). Volumes, Secrets, ConfigMaps, Services and the helm release stay, so a
restore keeps chart-generated passwords.
ARCHIVE_STRATEGY=uninstall: `helm uninstall` (kept resources and StatefulSet PVCs stay).

The workloads are found in the cluster (one LIST a kind), not by re-rendering the chart.
"""
from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from .. import locks, ownership
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
ARCHIVED_NODE_SELECTOR = "octopod.io/archived-node-selector"  # the previous nodeSelector, JSON
PARKED = ("octopod.io/archived", "true")  # a node label no node has: a DaemonSet's pods go
SCALED_KINDS = ("Deployment", "StatefulSet")
# Everything scale stops, in the order it is done (and archive_check looks).
STOPPED_KINDS = (*SCALED_KINDS, "CronJob", "Job", "DaemonSet")
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


def release_lock(settings: Settings, target: Target):
    """The lock create holds, so an archive never interleaves with a create on this host."""
    from ..helm import process_timeout

    return locks.deployment_lock(settings, target, 2 * process_timeout(settings.helm_timeout))


# -- scale
def scale_down(settings: Settings, target: Target, live: bool) -> None:
    """Stop every workload helm made for the (verified) release; nothing else is touched."""
    where = f"{target.namespace}/{target.release}"
    if not live:
        log(f"archive: release {where} not found (nor its namespace, maybe): nothing to archive")
        return
    from ..kube import client_for
    from ..workloads import helm_objects

    client = client_for(settings)
    try:
        found = {kind: helm_objects(client, target.namespace, target.release, kind)
                 for kind in STOPPED_KINDS}
    finally:
        client.close()
    from ..kubectl import kubectl_for

    kubectl = kubectl_for(settings)
    changed = 0
    for kind in SCALED_KINDS:
        for obj in found[kind]:
            changed += _scale_to_zero(kubectl, kind, obj, target.namespace)
    for obj in found["CronJob"]:
        changed += _suspend(kubectl, "CronJob", obj, target.namespace)
    for obj in found["Job"]:
        if job_finished(obj):
            log(f"archive: job/{_name(obj)} already finished")
        else:
            changed += _suspend(kubectl, "Job", obj, target.namespace)
    for obj in found["DaemonSet"]:
        changed += _park(kubectl, obj, target.namespace)
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


def _suspend(kubectl, kind: str, obj: dict, namespace: str) -> int:
    """A CronJob starts no more Jobs; a suspended Job's controller deletes its running Pods."""
    if (obj.get("spec") or {}).get("suspend"):
        log(f"archive: {kind.lower()}/{_name(obj)} already suspended")
        return 0
    kubectl.patch(kind, _name(obj), namespace, {
        "metadata": {"annotations": {ARCHIVED_SUSPEND: "false"}},
        "spec": {"suspend": True}})
    return 1


def _park(kubectl, obj: dict, namespace: str) -> int:
    """A DaemonSet cannot be scaled: its pod template gets a node selector no node matches,
    so its controller deletes every Pod. The previous nodeSelector is recorded in the same patch."""
    if is_parked(obj):  # already: the record holds what ran before, never our own key
        log(f"archive: daemonset/{_name(obj)} already parked")
        return 0
    key, value = PARKED
    kubectl.patch("DaemonSet", _name(obj), namespace, {
        "metadata": {"annotations": {ARCHIVED_NODE_SELECTOR: json.dumps(node_selector(obj), sort_keys=True)}},
        "spec": {"template": {"spec": {"nodeSelector": {key: value}}}}})
    return 1


def node_selector(obj: dict) -> dict:
    return ((((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeSelector")
            or {})


def is_parked(obj: dict) -> bool:
    key, value = PARKED
    return node_selector(obj).get(key) == value


def job_finished(obj: dict) -> bool:
    """Complete or Failed: a finished Job runs no Pod, and resuming it would not run it again."""
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in ((obj.get("status") or {}).get("conditions") or []))


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


# -- restore (called by create after a successful helm upgrade)
# kind -> (annotation, spec field, the value archive set, the recorded text parsed)
RESTORED = {
    "Deployment": (ARCHIVED_REPLICAS, "replicas", 0, lambda text: _count(text)),
    "StatefulSet": (ARCHIVED_REPLICAS, "replicas", 0, lambda text: _count(text)),
    "CronJob": (ARCHIVED_SUSPEND, "suspend", True, lambda text: text == "true"),
    "Job": (ARCHIVED_SUSPEND, "suspend", True, lambda text: text == "true"),
    "DaemonSet": (ARCHIVED_NODE_SELECTOR, "nodeSelector", None, lambda text: _selector(text)),
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
        from ..release_record import current_release, rendered_specs

        record = current_release(client, target.namespace, target.release, settings.helm_driver)
    finally:
        client.close()
    from ..kubectl import kubectl_for

    rendered = rendered_specs(record)  # None when there is no manifest to ask
    kubectl = kubectl_for(settings)
    for kind, obj in archived:
        _restore_one(kubectl, kind, obj, target.namespace, rendered)
    log(f"restore: recorded values of {len(archived)} workload(s) of {target.release} handled")


def archived_workloads(client: "KubeClient", target: Target) -> list[tuple[str, dict]]:
    """(kind, object) of each workload of the release that carries an archive record."""
    from ..workloads import helm_objects

    return [(kind, obj) for kind, (annotation, *_) in RESTORED.items()
            for obj in helm_objects(client, target.namespace, target.release, kind)
            if annotation in _annotations(obj) or (kind == "DaemonSet" and is_parked(obj))]


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


def _restore_one(kubectl, kind: str, obj: dict, namespace: str,
                 rendered: dict[tuple[str, str], dict] | None) -> None:
    annotation, field, archived_value, parse = RESTORED[kind]
    name, text = _name(obj), _annotations(obj).get(annotation)
    drop: dict[str, Any] = {"metadata": {"annotations": {annotation: None}}}
    what = f"{kind.lower()}/{name}"
    try:
        value = parse(text) if text is not None else None
    except ValueError:
        warn(f"restore: {what}: {annotation}={text!r} is not a value; left as helm set it")
        value = None
    if kind == "DaemonSet":  # parked: unparked in every case, record or not
        _unpark(kubectl, obj, namespace, rendered, value, drop)
        return
    if value is None:
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


def _unpark(kubectl, obj: dict, namespace: str, rendered: dict[tuple[str, str], dict] | None,
            recorded: dict[str, str] | None, drop: dict[str, Any]) -> None:
    """Take our key out of the DaemonSet's nodeSelector, whatever helm's upgrade did with it.

    Where the chart sets a nodeSelector, helm has put the chart's keys back (helm 4's
    server-side apply with --force-conflicts replaces the whole atomic map; helm 3's
    three-way merge, and helm 4's client-side one, keep a key no manifest ever held,
    ours): only our key goes. Where the chart sets none, helm left the field alone and
    the recorded selector is what ran: it comes back. With no manifest to ask, only
    our key goes (and so it does without a readable record).
    """
    name, (key, _) = _name(obj), PARKED
    current = node_selector(obj)
    live = {k: v for k, v in current.items() if k != key}
    spec = (rendered or {}).get(("DaemonSet", name)) or {}
    chart_sets = rendered is None or "nodeSelector" in ((spec.get("template") or {}).get("spec") or {})
    wanted = live if chart_sets or recorded is None else {**live, **recorded}
    selector: dict[str, Any] | None = {key: None, **{k: v for k, v in wanted.items() if current.get(k) != v}}
    if not wanted:
        selector = None  # nothing left: back to no nodeSelector at all
    if chart_sets:
        how = "the chart sets its nodeSelector" if rendered is not None else "no manifest to ask"
    else:
        how = "no record" if recorded is None else f"the recorded nodeSelector {recorded} restored"
    log(f"restore: daemonset/{name}: unparked ({how})")
    kubectl.patch("DaemonSet", name, namespace,
                  {**drop, "spec": {"template": {"spec": {"nodeSelector": selector}}}})


def _selector(text: str) -> dict[str, str]:
    value = json.loads(text)  # a JSONDecodeError is a ValueError
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(text)
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "?")


def _annotations(obj: dict) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}
