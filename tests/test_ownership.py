"""Ownership (issue 11): a staging's name never reaches what is not the staging's.

End to end through scripts/* with real helm 3 and 4 and kubectl on the emulator. Other
people's things are made the way they would be: a cluster add-on and another team's
release installed by plain `helm install`, a namespace and a volume made by hand. After
each refused operation the test checks the other party's things are exactly as they were.
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from tests.conftest import ROOT
from tests.test_create import octopod_args
from tests.test_lifecycle import kept_pvc, pvc

EXAMPLE = str(ROOT / "charts" / "example")
MARK = "octopod.io/managed-by=octopod-control"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def helm(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([env["HELM_BIN"], *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def history(env: dict, release: str, namespace: str) -> list[tuple[int, str]]:
    out = helm(env, "history", release, "-n", namespace, "-o", "json").stdout
    return [(r["revision"], r["status"]) for r in json.loads(out)]


def someone_elses_release(cluster, env: dict, release: str, namespace: str) -> None:
    """Installed by plain helm (no mark of ours), running, with a kept volume of its own."""
    helm(env, "install", release, EXAMPLE, "-n", namespace)
    cluster.ready(namespace)
    cluster.api("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
                kept_pvc(f"{release}-data", release, namespace))


def untouched(cluster, env: dict, release: str, namespace: str) -> None:
    """The other party's release: one revision, deployed; its workload at 1 replica; its volume."""
    assert history(env, release, namespace) == [(1, "deployed")]
    deployment = cluster.api("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{release}-app")
    assert deployment["spec"]["replicas"] == 1
    assert not any(k.startswith("octopod.io/") for k in deployment["metadata"].get("annotations") or {})
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{release}-data")
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}")


def refused(done: subprocess.CompletedProcess, *phrases: str) -> str:
    assert done.returncode == 1, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    for phrase in phrases:
        assert phrase in line, done.stderr
    return line


def invoke(env: dict, *args: str) -> subprocess.CompletedProcess:
    """A task that has no Octopod script (adopt), run as the wrappers run tasks."""
    return subprocess.run([sys.executable, "-P", "-m", "octopod_control", *args],
                          env={**env, "PYTHONPATH": str(ROOT)}, cwd="/", capture_output=True, text=True,
                          timeout=120)


def test_an_add_on_in_a_namespace_named_like_a_staging_is_never_touched(cluster, scripts, octopod_env):
    """DEPLOY_NAMESPACE={name} and an add-on (release `addon` in namespace `addon`, as
    cert-manager is): create, archive and cleanup (with CLEANUP_NAMESPACE) all refuse."""
    addon = unique("addon")
    cluster.create_namespace(addon)
    someone_elses_release(cluster, octopod_env, addon, addon)
    env = {"DEPLOY_NAMESPACE": "{name}", "CLEANUP_NAMESPACE": "true", "HELM_WAIT": "false"}
    args = octopod_args(addon, octopod_env["NAMESPACE"])

    line = refused(scripts("create", *args, "--tag", "v9", env=env), f"release {addon}/{addon} exists",
                   "not created by octopod-control", f"invoke adopt --name {addon}")
    assert line.startswith("error: ")
    untouched(cluster, octopod_env, addon, addon)
    refused(scripts("update", *args, "--tag", "v9", env=env), "not created by octopod-control")
    refused(scripts("archive", *args, env=env), "not created by octopod-control")
    refused(scripts("archive", *args, env={**env, "ARCHIVE_STRATEGY": "uninstall"}), "not created")
    refused(scripts("cleanup", *args, env=env), "not created by octopod-control")
    untouched(cluster, octopod_env, addon, addon)


def test_a_namespace_someone_else_made_is_refused_whatever_its_name(cluster, scripts, octopod_env):
    """No release there at all: the namespace itself is not the staging's."""
    name = unique("monitoring")
    cluster.create_namespace(f"stg-{name}")
    cluster.api("POST", f"/api/v1/namespaces/stg-{name}/persistentvolumeclaims", pvc("prometheus-db", {}))
    env = {"DEPLOY_NAMESPACE": "stg-{name}", "CLEANUP_NAMESPACE": "true", "HELM_WAIT": "false"}
    args = octopod_args(name, octopod_env["NAMESPACE"])
    refused(scripts("create", *args, "--tag", "v1", env=env),
            f"namespace stg-{name} exists and was not created by octopod-control", "stg-{name}")
    refused(scripts("archive", *args, env=env), f"namespace stg-{name} exists")
    refused(scripts("cleanup", *args, env=env), f"namespace stg-{name} exists")
    assert cluster.api("GET", f"/api/v1/namespaces/stg-{name}/persistentvolumeclaims/prometheus-db")
    assert cluster.api("GET", f"/api/v1/namespaces/stg-{name}")
    secrets = cluster.api("GET", f"/api/v1/namespaces/stg-{name}/secrets")["items"]
    assert not [s for s in secrets if (s["metadata"].get("labels") or {}).get("owner") == "helm"]


def test_another_teams_release_in_the_shared_namespace_is_never_touched(cluster, scripts, octopod_env,
                                                                       namespace):
    someone_elses_release(cluster, octopod_env, "payments", namespace)
    args = octopod_args("payments", namespace)
    env = {"HELM_WAIT": "false"}
    refused(scripts("create", *args, "--tag", "v2", env=env), f"release {namespace}/payments exists")
    refused(scripts("archive", *args, env=env), "not created by octopod-control")
    refused(scripts("cleanup", *args, env=env), "not created by octopod-control")
    untouched(cluster, octopod_env, "payments", namespace)


def test_cleanup_leaves_a_volume_that_only_shares_the_name_in_a_label(cluster, scripts, namespace):
    """`cleanup --name db` and another team's PVC labelled app=db (and instance=db)."""
    cluster.api("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
                pvc("orders-db", {"app": "db", "app.kubernetes.io/instance": "db"}))
    done = scripts("cleanup", *octopod_args("db", namespace))
    assert done.returncode == 0, done.stderr
    assert "nothing there is known to be this staging's" in done.stderr
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/orders-db")


def test_a_release_marked_for_another_staging_is_refused(cluster, scripts, namespace):
    """RELEASE_NAME without {name} sends two stagings to one release: the second is refused."""
    env = {"RELEASE_NAME": "shared-rel", "HELM_WAIT": "false"}
    first = scripts("create", *octopod_args("alpha", namespace, "--tag", "v1"), env=env)
    assert first.returncode == 0, first.stderr
    refused(scripts("create", *octopod_args("beta", namespace, "--tag", "v1"), env=env),
            "belongs to staging alpha, not beta", "RELEASE_NAME")
    refused(scripts("cleanup", *octopod_args("beta", namespace), env=env), "belongs to staging alpha")
    assert cluster.api("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/shared-rel-app")


def test_create_marks_the_release_and_the_namespace_it_makes_and_cleanup_removes_only_those(
        cluster, scripts, octopod_env):
    name = unique("feat")
    env = {"DEPLOY_NAMESPACE": "stg-{name}", "CLEANUP_NAMESPACE": "true", "HELM_WAIT": "false"}
    args = octopod_args(name, octopod_env["NAMESPACE"])
    done = scripts("create", *args, "--tag", "v1", env=env)
    assert done.returncode == 0, done.stderr
    assert f"namespace stg-{name} created for staging {name}" in done.stderr
    ns = cluster.api("GET", f"/api/v1/namespaces/stg-{name}")["metadata"]
    assert ns["labels"]["octopod.io/managed-by"] == "octopod-control"
    assert ns["labels"]["octopod.io/staging"] == name
    assert ns["annotations"]["octopod.io/namespace-origin"] == "created"
    records = cluster.api("GET", f"/api/v1/namespaces/stg-{name}/secrets?labelSelector=owner%3Dhelm")["items"]
    assert [r["metadata"]["labels"]["octopod.io/staging"] for r in records] == [name]
    again = scripts("update", *args, "--tag", "v2", env=env)  # our own: upgraded, still marked
    assert again.returncode == 0, again.stderr
    records = cluster.api("GET", f"/api/v1/namespaces/stg-{name}/secrets?labelSelector=owner%3Dhelm")["items"]
    assert sorted((r["metadata"]["labels"]["version"], r["metadata"]["labels"]["octopod.io/staging"])
                  for r in records) == [("1", name), ("2", name)]

    done = scripts("cleanup", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert cluster.api("GET", f"/api/v1/namespaces/stg-{name}") is None


def test_adopt_marks_a_release_made_before_ownership_and_its_namespace_is_never_deleted(
        cluster, scripts, octopod_env):
    """The explicit way in for a staging created by an earlier version (plain helm here)."""
    name = unique("old")
    namespace = f"stg-{name}"
    cluster.create_namespace(namespace)
    someone_elses_release(cluster, octopod_env, name, namespace)
    env = {"DEPLOY_NAMESPACE": "stg-{name}", "CLEANUP_NAMESPACE": "true", "HELM_WAIT": "false"}
    args = octopod_args(name, octopod_env["NAMESPACE"])
    refused(scripts("update", *args, "--tag", "v2", env=env), "invoke adopt")

    adopted = invoke({**octopod_env, **env}, "adopt", *args)
    assert adopted.returncode == 0, adopted.stderr
    assert f"release {namespace}/{name} is now staging {name}'s" in adopted.stderr
    assert "kubectl label secret" in adopted.stderr  # replayable by an operator
    ns = cluster.api("GET", f"/api/v1/namespaces/{namespace}")["metadata"]
    assert ns["labels"]["octopod.io/staging"] == name
    assert ns["annotations"]["octopod.io/namespace-origin"] == "adopted"
    assert invoke({**octopod_env, **env}, "adopt", *args).returncode == 0  # idempotent

    done = scripts("update", *args, "--tag", "v2", env=env)
    assert done.returncode == 0, done.stderr
    assert history(octopod_env, name, namespace)[-1] == (2, "deployed")
    done = scripts("cleanup", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert f"namespace {namespace} kept" in done.stderr
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}")  # adopted, not created: it stays
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}-data") is None


def test_adopt_refuses_what_another_staging_owns(cluster, scripts, octopod_env, namespace):
    env = {"RELEASE_NAME": "rel-{project_name}", "HELM_WAIT": "false"}
    assert scripts("create", *octopod_args("alpha", namespace, "--tag", "v1"), env=env).returncode == 0
    done = invoke({**octopod_env, **env}, "adopt", *octopod_args("beta", namespace))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: adopt: release {namespace}/rel-demo belongs to staging alpha, not beta")


def test_archive_and_restore_touch_only_the_releases_own_workloads(cluster, scripts, octopod_env,
                                                                  namespace):
    """A Deployment labelled with the release's instance label but made by someone else
    (no helm annotations for this release) is neither scaled nor restored."""
    env = {"HELM_WAIT": "false"}
    assert scripts("create", *octopod_args("shop", namespace, "--tag", "v1"), env=env).returncode == 0
    lookalike = {"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "lookalike", "labels": {"app.kubernetes.io/instance": "shop"},
                              "annotations": {"meta.helm.sh/release-name": "shop",
                                              "meta.helm.sh/release-namespace": "elsewhere"}},
                 "spec": {"replicas": 2, "selector": {"matchLabels": {"x": "y"}},
                          "template": {"metadata": {"labels": {"x": "y"}},
                                       "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    cluster.api("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", lookalike)
    done = scripts("archive", *octopod_args("shop", namespace), env=env)
    assert done.returncode == 0, done.stderr
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    assert cluster.api("GET", f"{path}/shop-app")["spec"]["replicas"] == 0
    assert cluster.api("GET", f"{path}/lookalike")["spec"]["replicas"] == 2
    # ...and what archive does not stop, archive_check does not wait for.
    assert "lookalike" not in scripts("archive_check", *octopod_args("shop", namespace), env=env).stderr
    done = scripts("cleanup", *octopod_args("shop", namespace), env=env)
    assert done.returncode == 0, done.stderr
    assert cluster.api("GET", f"{path}/lookalike")["spec"]["replicas"] == 2


def test_ownership_rules_as_plain_functions():
    from octopod_control import ownership
    from octopod_control.args import Deployment

    feat = Deployment("feat", "stagings")
    marked = {"metadata": {"labels": {"octopod.io/managed-by": "octopod-control", "octopod.io/staging": "feat"}}}
    ownership.check_release(None, "feat", "ns", feat)  # nothing there: nothing of anyone's
    ownership.check_release(marked, "feat", "ns", feat)
    with pytest.raises(ownership.NotOurs, match="belongs to staging feat, not other"):
        ownership.check_release(marked, "feat", "ns", Deployment("other", "stagings"))
    forged = {"metadata": {"labels": {"octopod.io/staging": "feat"}}}  # half a mark is none
    with pytest.raises(ownership.NotOurs, match="not created by octopod-control"):
        ownership.check_release(forged, "feat", "ns", feat)
    created = {"metadata": {**marked["metadata"], "annotations": {"octopod.io/namespace-origin": "created"}}}
    adopted = {"metadata": {**marked["metadata"], "annotations": {"octopod.io/namespace-origin": "adopted"}}}
    assert ownership.created_for(created, feat) and not ownership.created_for(adopted, feat)
    assert not ownership.created_for(created, Deployment("other", "stagings"))
    helm_made = {"metadata": {"annotations": {"meta.helm.sh/release-name": "feat",
                                              "meta.helm.sh/release-namespace": "ns"}}}
    assert ownership.helm_made(helm_made, "feat", "ns")
    assert not ownership.helm_made(helm_made, "feat", "other-ns")
    assert not ownership.helm_made({"metadata": {"labels": {"app.kubernetes.io/instance": "feat"}}}, "feat", "ns")


def test_adopt_all_releases_lists_first_then_marks_every_unmarked_release(cluster, scripts, octopod_env,
                                                                          namespace):
    """After upgrading to ownership marks: every staging of the shared namespace in one go."""
    for old in ("old-a", "old-b"):
        helm(octopod_env, "install", old, EXAMPLE, "-n", namespace)
    assert scripts("create", *octopod_args("new-c", namespace, "--tag", "v1"),
                   env={"HELM_WAIT": "false"}).returncode == 0
    listed = invoke(octopod_env, "adopt", "--all-releases", "--namespace", namespace)
    assert listed.returncode == 0, listed.stderr
    assert f"would mark release {namespace}/old-a as staging old-a's" in listed.stderr
    assert f"would mark release {namespace}/old-b" in listed.stderr and "new-c" not in listed.stderr
    assert "2 release(s) to adopt; run again with --yes" in listed.stderr
    refused(scripts("update", *octopod_args("old-a", namespace, "--tag", "v2"),
                    env={"HELM_WAIT": "false"}), "invoke adopt")  # a listing changes nothing

    marked = invoke(octopod_env, "adopt", "--all-releases", "--yes", "--namespace", namespace)
    assert marked.returncode == 0, marked.stderr
    for old in ("old-a", "old-b"):
        done = scripts("update", *octopod_args(old, namespace, "--tag", "v2"), env={"HELM_WAIT": "false"})
        assert done.returncode == 0, done.stderr
    again = invoke(octopod_env, "adopt", "--all-releases", "--namespace", namespace)
    assert "0 release(s) to adopt" in again.stderr


def test_adopt_all_releases_needs_release_names_that_are_staging_names(octopod_env, namespace):
    done = invoke({**octopod_env, "RELEASE_NAME": "rel-{name}"}, "adopt", "--all-releases",
                  "--namespace", namespace)
    assert done.returncode == 78
    assert "needs RELEASE_NAME={name} and a shared DEPLOY_NAMESPACE" in done.stderr


# -- the review's findings (issue 11): each path by which a name could still reach others' things
LIFECYCLE = str(ROOT / "tests" / "charts" / "lifecycle")


def test_create_refuses_to_take_over_objects_another_release_of_the_name_left(cluster, scripts,
                                                                             octopod_env, namespace):
    """Another team's `orders`, uninstalled, kept its volume and Secret (resource-policy keep):
    helm would take them over silently, and cleanup would then delete them."""
    helm(octopod_env, "install", "orders", LIFECYCLE, "-n", namespace)
    helm(octopod_env, "uninstall", "orders", "-n", namespace)
    kept = cluster.api("GET", f"/api/v1/namespaces/{namespace}/secrets/orders-creds")
    assert kept and cluster.api("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/orders-uploads")
    env = {"CHART": LIFECYCLE, "HELM_WAIT": "false"}
    refused(scripts("create", *octopod_args("orders", namespace, "--tag", "v1"), env=env),
            "already belong to a release orders that octopod-control did not make")
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}/secrets/orders-creds") == kept
    done = scripts("cleanup", *octopod_args("orders", namespace), env=env)
    assert done.returncode == 0, done.stderr
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/orders-uploads")
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}/secrets/orders-creds")


def test_a_release_in_the_other_helm_storage_is_refused(cluster, scripts, octopod_env, namespace):
    """`helm install payments` keeps Secrets; HELM_DRIVER=configmap must not see 'no release'."""
    someone_elses_release(cluster, octopod_env, "payments", namespace)
    env = {"HELM_DRIVER": "configmap", "HELM_WAIT": "false"}
    args = octopod_args("payments", namespace)
    for script in ("create", "archive", "cleanup"):
        refused(scripts(script, *args, *(["--tag", "v2"] if script == "create" else []), env=env),
                "is recorded in helm's secret storage, but HELM_DRIVER=configmap")
    untouched(cluster, octopod_env, "payments", namespace)


def test_a_record_planted_by_labels_is_not_a_release_record(cluster, scripts, namespace):
    """A chart could label a Secret owner=helm,name=<release>, even with our mark: without helm's
    name and type it is no record, so it neither passes as the release nor gets it deleted."""
    planted = {"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "planted", "labels": {"owner": "helm", "name": "victim", "version": "99",
                                      "status": "deployed", "octopod.io/managed-by": "octopod-control",
                                      "octopod.io/staging": "victim"}},
        "data": {"release": "bm90IGEgcmVjb3Jk"}}
    cluster.api("POST", f"/api/v1/namespaces/{namespace}/secrets", planted)
    checked = scripts("check", *octopod_args("victim", namespace))
    assert checked.returncode == 1 and "release victim not found" in checked.stderr, checked.stderr
    done = scripts("cleanup", *octopod_args("victim", namespace))
    assert done.returncode == 0 and "no release victim" in done.stderr, done.stderr
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}/secrets/planted")


def test_cleanup_never_deletes_an_older_volume_named_like_the_releases(cluster, scripts, namespace):
    """Overrides shape the StatefulSet's name (a chart's fullname): a leftover `data-<name>-db-0`
    made before the release is another party's, whatever its name."""
    path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    cluster.api("POST", path, pvc("data-older-db-0", {}))  # before the release existed
    env = {"CHART": LIFECYCLE, "HELM_WAIT": "false"}
    import time
    time.sleep(1.1)  # creation timestamps have a resolution of one second
    assert scripts("create", *octopod_args("older", namespace, "--tag", "v1"), env=env).returncode == 0
    cluster.api("POST", path, pvc("data-older-db-1", {}))  # what the StatefulSet's controller makes
    done = scripts("cleanup", *octopod_args("older", namespace), env=env)
    assert done.returncode == 0, done.stderr
    assert cluster.api("GET", f"{path}/data-older-db-0")
    assert cluster.api("GET", f"{path}/data-older-db-1") is None


def test_archive_check_does_not_wait_for_another_teams_pod_with_the_releases_label(cluster, scripts,
                                                                                   namespace):
    env = {"HELM_WAIT": "false"}
    assert scripts("create", *octopod_args("shop2", namespace, "--tag", "v1"), env=env).returncode == 0
    cluster.api("POST", f"/api/v1/namespaces/{namespace}/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "other-team-worker", "labels": {"app.kubernetes.io/instance": "shop2"}},
        "spec": {"containers": [{"name": "w", "image": "w"}]}})
    cluster.ready(namespace)
    assert scripts("archive", *octopod_args("shop2", namespace), env=env).returncode == 0
    done = scripts("archive_check", *octopod_args("shop2", namespace), env=env)
    assert done.returncode == 0, done.stderr
    assert "other-team-worker" not in done.stderr
