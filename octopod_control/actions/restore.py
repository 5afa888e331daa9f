"""restore: bring back what archive recorded, the step create runs after its upgrade, on its own.

Octopod restores an archived staging by calling create again (docs/lifecycle.md), and
create runs this step itself (restoring.py: RestoreStep). As an action it is for a
release whose upgrade ran without it: helm's upgrade puts back what the chart renders,
and this fills in, from archive's records, what the chart does not set. Before any
upgrade it is not a restore: a field the chart sets would stay at archive's value, with
its record dropped. Under the same lock as create, archive and cleanup; only a release
(and per-staging namespace) that is this staging's. Not an Octopod script.
"""
from __future__ import annotations

from .. import locks, ownership
from ..args import Deployment
from ..restoring import restore_recorded
from ..settings import Settings
from ..target import resolve_target


def restore(settings: Settings, deployment: Deployment) -> None:
    target = resolve_target(settings, deployment)
    with locks.deployment_lock(settings, target):
        from ..kube import client_for

        client = client_for(settings)
        try:
            ownership.verified_release(client, target, deployment, settings.helm_driver)
            ownership.verified_namespace(settings, client, target, deployment)
        finally:
            client.close()
        restore_recorded(settings, target)
