"""Ownership: what this tool made for a staging carries its mark, and nothing else is touched.

The mark is two labels, `octopod.io/managed-by=octopod-control` and
`octopod.io/staging=<deployment name>`:
- on the helm release: create passes them as `helm --labels`, so helm keeps them on
  the Secret (or ConfigMap) that stores each revision;
- on a namespace the tool creates, with the annotation `octopod.io/namespace-origin`:
  `created` when we made it, `adopted` when an operator handed it to us.

The rules, whatever name a user picks:
- create and update upgrade a release only when none exists or its newest revision
  carries this staging's mark (helm itself refuses objects of another release);
- with DEPLOY_NAMESPACE derived from `{name}`, a staging deploys only into a namespace
  we created for it (we create it when absent) or one adopted for it;
- archive, restore and cleanup act only on a release with this staging's mark, and on
  objects helm made for that release (both `meta.helm.sh/release-name` and
  `meta.helm.sh/release-namespace` match: a label alone is not proof);
- cleanup deletes a namespace only when we created it for this staging.
A refusal is exit 1 and one line saying what was found and how to adopt it
(`invoke adopt`, never implied).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping

from .args import Deployment
from .errors import ExternalError

if TYPE_CHECKING:
    from .kube import KubeClient
    from .settings import Settings
    from .target import Target

MANAGED_BY = "octopod.io/managed-by"
TOOL = "octopod-control"
STAGING = "octopod.io/staging"
NAMESPACE_ORIGIN = "octopod.io/namespace-origin"  # "created" or "adopted"
CREATED, ADOPTED = "created", "adopted"


class NotOurs(ExternalError):
    """Something exists under the staging's name that this tool did not make for it."""


def release_labels(deployment: Deployment) -> dict[str, str]:
    """The mark create puts on every revision of the release (`helm --labels`)."""
    return {MANAGED_BY: TOOL, STAGING: deployment.name}


def namespace_metadata(deployment: Deployment | None, origin: str) -> dict[str, Any]:
    """Labels and annotation of a namespace we create (deployment None: a shared one)."""
    labels = {MANAGED_BY: TOOL, **({STAGING: deployment.name} if deployment else {})}
    return {"labels": labels, "annotations": {NAMESPACE_ORIGIN: origin}}


def marked_staging(meta: Mapping[str, Any] | None) -> str | None:
    """The staging an object's mark names, or None when it carries no mark of ours."""
    labels = (meta or {}).get("labels") or {}
    if labels.get(MANAGED_BY) != TOOL:
        return None
    return labels.get(STAGING) or None


def check_release(storage: Mapping[str, Any] | None, release: str, namespace: str,
                  deployment: Deployment) -> None:
    """Raise NotOurs unless the release's newest revision (its storage object) is this staging's.

    None (no release at all) passes: there is nothing of anyone's to touch.
    """
    if storage is None:
        return
    owner = marked_staging(storage.get("metadata"))
    if owner == deployment.name:
        return
    if owner:
        raise NotOurs(f"release {namespace}/{release} belongs to staging {owner}, not "
                      f"{deployment.name}: refusing to touch it (check RELEASE_NAME)")
    raise NotOurs(f"release {namespace}/{release} exists but was not created by octopod-control "
                  f"for staging {deployment.name} (no {STAGING} label): refusing to touch it. "
                  f"If it is this staging's from before ownership marks, adopt it once: "
                  f"invoke adopt --name {deployment.name}")


def check_namespace(namespace_obj: Mapping[str, Any] | None, namespace: str,
                    deployment: Deployment) -> None:
    """Raise NotOurs unless a per-staging namespace is absent or marked for this staging."""
    if namespace_obj is None:
        return
    owner = marked_staging(namespace_obj.get("metadata"))
    if owner == deployment.name:
        return
    whose = f"belongs to staging {owner}" if owner else "was not created by octopod-control"
    raise NotOurs(f"namespace {namespace} exists and {whose}: a staging deploys only into a "
                  f"namespace made for it. If it is {deployment.name}'s, adopt it once: "
                  f"invoke adopt --name {deployment.name}; else choose a DEPLOY_NAMESPACE "
                  f"with a prefix (stg-{{name}})")


def created_for(namespace_obj: Mapping[str, Any] | None, deployment: Deployment) -> bool:
    """True when we created this namespace for this staging (cleanup may delete only such)."""
    if namespace_obj is None:
        return False
    meta = namespace_obj.get("metadata") or {}
    return (marked_staging(meta) == deployment.name
            and (meta.get("annotations") or {}).get(NAMESPACE_ORIGIN) == CREATED)


def helm_made(obj: Mapping[str, Any], release: str, namespace: str) -> bool:
    """True for an object helm manages for exactly this release (name and namespace)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return (annotations.get("meta.helm.sh/release-name") == release
            and annotations.get("meta.helm.sh/release-namespace") == namespace)


# -- reading and claiming in the cluster (create, archive, cleanup, adopt share these)
def read_namespace(client: "KubeClient", name: str) -> dict | None:
    from .kube import NotFound

    try:
        return client.request("GET", f"/api/v1/namespaces/{name}")
    except NotFound:
        return None


def verified_release(client: "KubeClient", target: "Target", deployment: Deployment,
                     driver: str) -> list[dict]:
    """The release's storage objects (newest, deployed, failed...), after checking the newest
    carries this staging's mark; [] when there is no release. Raises NotOurs.

    A release recorded in the other driver's storage (plain `helm install` keeps Secrets,
    HELM_DRIVER=configmap looks in ConfigMaps) exists all the same: it is refused too.
    """
    from .release_record import newest_item, storage_items

    items = storage_items(client, target.namespace, target.release, driver)
    check_release(newest_item(items), target.release, target.namespace, deployment)
    other = "secret" if driver == "configmap" else "configmap"
    if storage_items(client, target.namespace, target.release, other):
        raise NotOurs(f"release {target.namespace}/{target.release} is recorded in helm's {other} "
                      f"storage, but HELM_DRIVER={driver}: refusing to touch it (set HELM_DRIVER "
                      "to where its records are)")
    return items


def check_no_orphans(client: "KubeClient", target: "Target", deployment: Deployment) -> None:
    """Before a first install: no object may already carry helm's annotations for this
    release. helm would silently take such objects over (a kept volume or Secret of another
    team's uninstalled release of the same name), and cleanup would then delete them."""
    from .workloads import PATHS

    for kind in PATHS:
        found = [o for o in client.list(PATHS[kind].format(ns=target.namespace))
                 if helm_made(o, target.release, target.namespace)]
        if found:
            names = ", ".join(sorted(o["metadata"]["name"] for o in found)[:3])
            raise NotOurs(f"{kind} {names} in {target.namespace} already belong to a release "
                          f"{target.release} that octopod-control did not make (left by an "
                          "uninstall?): refusing to take them over; remove them, or choose "
                          "another name")


def verified_namespace(settings: "Settings", client: "KubeClient", target: "Target",
                       deployment: Deployment) -> dict | None:
    """The namespace object when each staging has its own (None otherwise, or when absent),
    after checking it is this staging's. Raises NotOurs."""
    from .target import namespace_per_staging

    if not namespace_per_staging(settings):
        return None
    found = read_namespace(client, target.namespace)
    check_namespace(found, target.namespace, deployment)
    return found


def claim_namespace(settings: "Settings", client: "KubeClient", target: "Target",
                    deployment: Deployment) -> None:
    """Before create's upgrade: a per-staging namespace must be ours, and is created (marked)
    when absent; a shared one is created (marked, never deleted) only with CREATE_NAMESPACE."""
    from .target import namespace_per_staging

    per_staging = namespace_per_staging(settings)
    if not per_staging and not settings.flag("CREATE_NAMESPACE"):
        return
    found = verified_namespace(settings, client, target, deployment)
    if found is None and not per_staging:
        found = read_namespace(client, target.namespace)
    if found is not None:
        return
    from .kubectl import kubectl_for
    from .log import info

    body = {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": target.namespace,
                         **namespace_metadata(deployment if per_staging else None, CREATED)}}
    try:
        kubectl_for(settings).run(["create", "--filename", "-"], stdin=json.dumps(body))
    except ExternalError as exc:
        if "AlreadyExists" not in str(exc) and "already exists" not in str(exc):
            raise
        # Another run made it first: ours only if it carries our mark.
        if per_staging:
            check_namespace(read_namespace(client, target.namespace), target.namespace, deployment)
        return
    info(f"namespace {target.namespace} created for "
         + (f"staging {deployment.name}" if per_staging else "the stagings"))
