"""create and update: one `helm upgrade --install` with the complete set of values.

Octopod's create and update differ only in name: both send the whole set of
overrides, so both reset the values to the chart's and apply ours. With HELM_WAIT=true
the rollout is followed beside helm (rollout.py: progress, fail fast, a diagnosis on
failure), and a failed run never leaves the release pending.
"""
from __future__ import annotations

from .. import locks, ownership, process, rollout, values_templates
from ..args import Deployment
from ..errors import ExternalError, OctopodError
from ..helm import PENDING_ERROR, Helm
from ..log import info as log
from ..log import warn
from ..process import Result
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
    templates = values_templates.render_all(settings.words("VALUES_TEMPLATES"),
                                            deployment.template_fields())
    target = resolve_target(settings, deployment)
    chart = resolve_chart(settings.text("CHART"))
    helm = helm_for(settings, deployment.override_values() + settings.secret_values())
    wait = settings.flag("HELM_WAIT")
    # A malformed FAIL_FAST_* value is exit 78 before anything runs, as every setting's.
    rules = rollout.Rules.from_settings(settings) if wait else None
    log(f"deploying {target.namespace}/{target.release} from {chart}"
        + (f" at tag {deployment.tag}" if deployment.tag else ""))

    def upgrade(stop=None):
        # A chart version published after init: its repository's index is refreshed once.
        return helm.with_fresh_index(chart, settings.text("CHART_VERSION"), lambda: helm.upgrade_install(
            target.release, chart, target.namespace, values=values,
            labels=ownership.release_labels(deployment),
            values_files=settings.words("VALUES_FILES") + template_files,  # VALUES_TEMPLATES rendered
            version=settings.text("CHART_VERSION"), wait=wait, stop=stop),
            timeout=settings.seconds("HELM_REPO_TIMEOUT"))

    def attempt():
        """helm's upgrade; with HELM_WAIT, followed beside it (None: not followed)."""
        if rules is None:
            return upgrade(), None
        try:
            follow = rollout.Follow(settings, target, deployment.override_values() + settings.secret_values(),
                                    rules)
        except OctopodError as exc:  # following is an aid: helm still runs, and waits
            warn(f"not following the rollout: {exc}")
            return upgrade(), None
        try:
            return follow.run(upgrade), follow
        except process.TimedOut as exc:  # helm outlived its own timeout and was stopped: still
            return Stopped(str(exc)), follow  # diagnose, and leave the release settled

    from ..restoring import RestoreStep

    state = ""  # where a failed release stands, once settled

    with values_templates.written(templates) as template_files, locks.deployment_lock(settings, target):
        claim(settings, target, deployment)
        # A restore after an archive: its reads run while helm works, its writes after a good upgrade.
        restore = RestoreStep(settings, target)
        result, follow = attempt()
        if not result.ok and PENDING_ERROR in result.output:
            recover_pending(helm, target)
            result, follow = attempt()
        if result.ok:
            restore.finish()
        elif follow is not None:
            follow.diagnose()
            state = settle(helm, target)
    if not result.ok:
        if isinstance(result, Stopped):
            raise ExternalError(f"{result.output}; the diagnosis is above; {state}")
        if follow is not None and follow.failure:
            raise ExternalError(f"rollout of {target.release} failed fast, {follow.stopped_after:.0f}s in "
                                f"(HELM_TIMEOUT={settings.helm_timeout:g}s): {follow.failure}; "
                                f"the diagnosis is above; {state}")
        raise ExternalError(f"helm upgrade --install {target.release}: failed with exit code "
                            f"{result.returncode} (helm's output "
                            + (f"and the diagnosis are above); {state}" if follow else "is above)"))
    log(f"deployed {target.namespace}/{target.release}")
    return target


class Stopped(Result):
    """helm stopped by our process timeout (past HELM_TIMEOUT and its grace): a failed result."""

    def __init__(self, message: str) -> None:
        super().__init__([], -1, message)


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


def settle(helm: Helm, target: Target) -> str:
    """After a failed run that waited: the release never stays pending (helm stopped by SIGTERM
    marks it failed itself; one killed before it could is recovered as a killed run's is), and
    where it stands, said in a few words. A failed revision stays in history; the next create
    or update upgrades from it."""
    try:
        history = helm.history(target.release, target.namespace)
        if history and str(history[-1].get("status", "")).startswith("pending"):
            recover_pending(helm, target)
            history = helm.history(target.release, target.namespace)
    except OctopodError as exc:
        return f"the release's state is unknown ({exc})"
    if not history:
        return f"release {target.release} is not installed"
    last = history[-1]
    return f"release {target.release} is at revision {last.get('revision', '?')}, {last.get('status', '?')}"


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

