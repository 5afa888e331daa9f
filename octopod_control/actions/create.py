"""create and update: one `helm upgrade --install` with the complete set of values.

Octopod's create and update differ only in name: both send the whole set of
overrides, so both reset the values to the chart's and apply ours.
"""
from __future__ import annotations

from .. import locks, ownership
from ..args import Deployment
from ..errors import ExternalError
from ..helm import PENDING_ERROR, Helm
from ..log import info as log
from ..settings import Settings
from ..target import Target, helm_for, resolve_chart, resolve_target
from ..values import build_values, dump_values

VALUE_KEYS = ("TAG_KEY", "PROJECT_NAME_KEY", "BASE_DOMAIN_KEY", "APP_ENV_PREFIX",
              "DEPLOYMENT_OVERRIDE_PREFIX")


def values_for(settings: Settings, deployment: Deployment) -> str:
    """The values document, or a UsageError (nothing run) for an override that may not be applied."""
    keys = {k: settings.text(k) for k in VALUE_KEYS}
    return dump_values(build_values(deployment, keys, protected=settings.words("PROTECTED_VALUES"),
                                    allow_templates=settings.flag("ALLOW_TEMPLATE_VALUES")))


def deploy(settings: Settings, deployment: Deployment) -> Target:
    """Install or upgrade the deployment's release; recover a release a killed run left pending.

    Only a release (and a per-staging namespace) that is this staging's is touched: both
    are checked before helm runs, and the release is marked as ours on every revision.
    """
    values = values_for(settings, deployment)
    target = resolve_target(settings, deployment)
    chart = resolve_chart(settings.text("CHART"))
    helm = helm_for(settings, deployment.override_values())
    wait = settings.flag("HELM_WAIT")
    log(f"deploying {target.namespace}/{target.release} from {chart}"
        + (f" at tag {deployment.tag}" if deployment.tag else ""))

    def upgrade():
        return helm.upgrade_install(
            target.release, chart, target.namespace, values=values,
            labels=ownership.release_labels(deployment), values_files=settings.words("VALUES_FILES"),
            version=settings.text("CHART_VERSION"), wait=wait)

    from ..restoring import RestoreStep

    with locks.deployment_lock(settings, target):
        claim(settings, target, deployment)
        # A restore after an archive: its reads run while helm works, its writes after a good upgrade.
        restore = RestoreStep(settings, target)
        result = upgrade()
        if not result.ok and PENDING_ERROR in result.output:
            recover_pending(helm, target)
            result = upgrade()
        if result.ok:
            restore.finish()
    if not result.ok:
        raise ExternalError(f"helm upgrade --install {target.release}: failed with exit code "
                            f"{result.returncode} (helm's output is above)")
    log(f"deployed {target.namespace}/{target.release}")
    return target


def claim(settings: Settings, target: Target, deployment: Deployment) -> None:
    """Refuse a release or namespace that is not this staging's; create its namespace if needed."""
    from ..kube import client_for

    client = client_for(settings)
    try:
        if not ownership.verified_release(client, target, deployment, settings.helm_driver):
            ownership.check_no_orphans(client, target, deployment)  # a first install
        ownership.claim_namespace(settings, client, target, deployment)
    finally:
        client.close()


def recover_pending(helm: Helm, target: Target) -> None:
    """Roll a pending release back to its last deployed revision, or remove it if it never deployed.

    Only called while holding the release lock, so no run on this host is still working on it.
    """
    history = helm.history(target.release, target.namespace)
    pending = [r for r in history if str(r.get("status", "")).startswith("pending")]
    if not pending:
        return
    deployed = [r for r in history if r.get("status") in ("deployed", "superseded")
                and r.get("revision", 0) < pending[-1].get("revision", 0)]
    if deployed:
        revision = int(deployed[-1]["revision"])
        log(f"release {target.release} was left {pending[-1]['status']} by an interrupted run; "
            f"rolling back to revision {revision}")
        result = helm.rollback(target.release, target.namespace, revision)
    else:
        log(f"release {target.release} was left {pending[-1]['status']} by an interrupted run "
            "and never deployed; removing it")
        result = helm.uninstall(target.release, target.namespace)
    if not result.ok:
        raise ExternalError(f"release {target.release}: could not recover the pending release")

