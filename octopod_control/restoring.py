"""The restore step: what archive recorded on the release's workloads comes back after helm's upgrade.

Octopod restores an archived staging by calling create again. helm's upgrade sets every
field the chart renders; a field it does not render stays as archive left it (0
replicas, suspended, parked). So create, after a successful upgrade and under its lock,
runs this step: each workload carrying archive's record gets its kind's restore (kinds/):
the recorded value where the chart says nothing, the record dropped either way.

Plumbing below actions/: create runs it (RestoreStep), and actions/restore.py is the
step as an action of its own; no action imports another. The API reader (ssl, yaml:
about 30 ms of imports) is imported where used: create imports this module on every run.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Mapping

from .kinds import KINDS, Kind
from .kinds.base import name_of
from .log import info as log
from .log import warn
from .settings import Settings
from .target import Target

if TYPE_CHECKING:
    from .kube import KubeClient


def archived_workloads(client: "KubeClient", target: Target) -> list[tuple[Kind, dict]]:
    """(kind, object) of each workload helm made for the release that carries an archive record.
    One LIST a kind."""
    from .workloads import helm_objects

    return [(kind, obj) for kind in KINDS
            for obj in helm_objects(client, target.namespace, target.release, kind.name)
            if kind.archived(obj)]


def restore_recorded(settings: Settings, target: Target) -> None:
    """Bring back what archive recorded, where the chart says nothing, then drop the record.

    Costs one LIST a kind when nothing was archived; otherwise also one of helm's records
    (the manifest says which fields the chart sets) and one kubectl patch a workload.
    """
    from .kube import client_for

    client = client_for(settings)
    try:
        archived = archived_workloads(client, target)
        if not archived:
            return
        from .release_record import current_release

        record = current_release(client, target.namespace, target.release, settings.helm_driver)
    finally:
        client.close()
    from .kubectl import kubectl_for
    from .manifest import specs

    rendered = specs((record or {}).get("manifest"))  # None when there is no manifest to ask
    kubectl = kubectl_for(settings)
    for kind, obj in archived:
        restore_one(kubectl, kind, obj, target.namespace, rendered)
    log(f"restore: recorded values of {len(archived)} workload(s) of {target.release} handled")


def restore_one(kubectl: Any, kind: Kind, obj: dict, namespace: str,
                rendered: Mapping[tuple[str, str], Any] | None) -> None:
    """One workload: its kind's restore, said and sent as one merge patch."""
    name = name_of(obj)
    spec = None if rendered is None else rendered.get((kind.name, name), {})
    change = kind.restore(obj, spec)
    if change.warning:
        warn(f"restore: {change.warning}")
    if change.note:
        log(f"restore: {change.note}")
    kubectl.patch(kind.name, name, namespace, change.patch)


class RestoreStep:
    """restore_recorded, split around helm's upgrade so that create does not wait for it.

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
            from .kube import client_for

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
            restore_recorded(self.settings, self.target)
