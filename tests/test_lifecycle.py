"""archive, archive_check, restore and cleanup end to end: scripts/* by absolute path, real helm 3
and 4 and kubectl, the emulated API. The tests act as the controllers the emulator lacks: they mark
workloads ready, create the Pods and the StatefulSet's PVCs, and delete Pods after a scale-down.
"""
from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from tests.conftest import ROOT, tool
from tests.test_create import octopod_args

CHART = str(ROOT / "tests" / "charts" / "lifecycle")
NAME = "life"
ARCHIVED = "octopod.io/archived-replicas"
SELECTOR = "octopod.io/archived-node-selector"


def kubectl(env, *args, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([tool("kubectl"), *args], env=env, capture_output=True, text=True, timeout=60)
    assert not check or done.returncode == 0, done.stderr
    return done


def get(env, ns, what) -> dict:
    return json.loads(kubectl(env, "get", what, "-n", ns, "-o", "json").stdout)


def replicas(env, ns) -> dict[str, int]:
    return {part: get(env, ns, f"{kind}/{NAME}-{part}")["spec"]["replicas"]
            for kind, part in (("deployment", "web"), ("deployment", "worker"), ("statefulset", "db"))}


def act_as_controllers(cluster, ns: str, db_replicas: int, release: str = NAME) -> None:
    """What the StatefulSet and ReplicaSet controllers would make: PVCs and running Pods."""
    for i in range(db_replicas):
        labels = {"app.kubernetes.io/instance": release, "app.kubernetes.io/component": "db"}
        if not cluster.api("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data-{release}-db-{i}"):
            cluster.api("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims", pvc(f"data-{release}-db-{i}", labels))
    for component, count in (("web", 2), ("db", db_replicas)):
        for i in range(count):
            cluster.api("POST", f"/api/v1/namespaces/{ns}/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{release}-{component}-{i}", "labels": {
                    "app.kubernetes.io/instance": release, "app.kubernetes.io/component": component}},
                "spec": {"containers": [{"name": "app", "image": "app"}]}})
    cluster.ready(ns)  # Pods Running, PVCs Bound


def stop_pods(cluster, ns: str) -> None:
    """The controllers' answer to a scale-down or an uninstall: the Pods go."""
    for pod in cluster.api("GET", f"/api/v1/namespaces/{ns}/pods")["items"]:
        cluster.api("DELETE", f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}")


def pvc(name: str, labels: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "labels": labels},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def kept_pvc(name: str, release: str, namespace: str) -> dict:
    """A volume helm made for the release and kept (`helm.sh/resource-policy: keep`)."""
    body = pvc(name, {"app.kubernetes.io/instance": release})
    body["metadata"]["annotations"] = {"meta.helm.sh/release-name": release,
                                       "meta.helm.sh/release-namespace": namespace,
                                       "helm.sh/resource-policy": "keep"}
    return body


def ours(item: dict) -> bool:
    """Anything of the deployment: by name, release labels/annotations, or helm's record of it."""
    meta = item["metadata"]
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    return (meta["name"].startswith(NAME) or f".{NAME}." in meta["name"]
            or labels.get("app.kubernetes.io/instance") == NAME or labels.get("app") == NAME
            or labels.get("octopod.test/staging") == NAME
            or (labels.get("owner") == "helm" and labels.get("name") == NAME)
            or annotations.get("meta.helm.sh/release-name") == NAME)


def left_over(env, ns) -> list[str]:
    items = get(env, ns, "all,pvc,secret,cm")["items"]
    return [f"{i['kind']}/{i['metadata']['name']}" for i in items if ours(i)]


def test_scale_archive_restore_cleanup(cluster, scripts, octopod_env, namespace):
    """Octopod's sequence with ARCHIVE_STRATEGY=scale in a namespace other deployments share."""
    env = {"CHART": CHART, "CLEANUP_SELECTORS": "octopod.test/staging={name}"}
    args = octopod_args(NAME, namespace)
    ns, kenv = namespace, octopod_env
    # Someone else's things in the same namespace: cleanup must leave them alone.
    cluster.api("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims",
                pvc("other-data", {"app.kubernetes.io/instance": "other", "app": "other"}))
    cluster.api("POST", f"/api/v1/namespaces/{ns}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "sh.helm.release.v1.other.v1", "labels": {"owner": "helm", "name": "other"}}})

    with cluster.controller(ns):
        done = scripts("create", *args, "--tag", "v1", env=env)
    assert done.returncode == 0, done.stderr
    # Operators (or autoscalers) scaled what the chart leaves unset, and web beyond the chart's 2.
    for what, count in (("deployment/life-worker", 3), ("statefulset/life-db", 2), ("deployment/life-web", 4)):
        kubectl(kenv, "scale", what, f"--replicas={count}", "-n", ns)
    act_as_controllers(cluster, ns, db_replicas=2)
    # Volumes made by hand with the deployment's name in a label (app=<name>, CLEANUP_SELECTORS).
    cluster.api("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims", pvc("hand-made", {"app": NAME}))
    cluster.api("POST", f"/api/v1/namespaces/{ns}/persistentvolumeclaims",
                pvc("by-selector", {"octopod.test/staging": NAME}))

    running = scripts("archive_check", *args, env=env)
    assert running.returncode == 1
    assert "deployment/life-web: spec.replicas is 4, not 0" in running.stderr
    assert "cronjob/life-report: not suspended" in running.stderr
    assert "Traceback" not in running.stderr and running.stdout == ""

    done = scripts("archive", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert "kubectl patch deployment life-web" in done.stderr  # replayable by an operator
    assert replicas(kenv, ns) == {"web": 0, "worker": 0, "db": 0}
    recorded = {w: get(kenv, ns, w)["metadata"]["annotations"][ARCHIVED]
                for w in ("deployment/life-web", "deployment/life-worker", "statefulset/life-db")}
    assert recorded == {"deployment/life-web": "4", "deployment/life-worker": "3", "statefulset/life-db": "2"}
    assert get(kenv, ns, "cronjob/life-report")["spec"]["suspend"] is True

    pods_left = scripts("archive_check", *args, env=env)
    assert pods_left.returncode == 1 and "pod/life-web-0: Running" in pods_left.stderr
    stop_pods(cluster, ns)
    archived = scripts("archive_check", *args, env=env)
    assert archived.returncode == 0, archived.stderr

    again = scripts("archive", *args, env=env)  # idempotent: the records are not overwritten with 0
    assert again.returncode == 0, again.stderr
    assert get(kenv, ns, "deployment/life-worker")["metadata"]["annotations"][ARCHIVED] == "3"
    pvcs = {p["metadata"]["name"] for p in get(kenv, ns, "pvc")["items"]}
    assert {"life-uploads", "data-life-db-0", "data-life-db-1", "hand-made"} <= pvcs
    assert get(kenv, ns, "secret/life-creds")["data"]["password"]

    with cluster.controller(ns):  # restore = create again, same tag
        done = scripts("create", *args, "--tag", "v1", env=env)
    assert done.returncode == 0, done.stderr
    # web: what the chart asks (helm's three-way merge / server-side apply); the others: what ran.
    assert replicas(kenv, ns) == {"web": 2, "worker": 3, "db": 2}
    web = get(kenv, ns, "deployment/life-web")
    assert ARCHIVED not in (web["metadata"].get("annotations") or {})
    report = get(kenv, ns, "cronjob/life-report")
    assert not report["spec"].get("suspend")
    assert not any(k.startswith("octopod.io/") for k in report["metadata"].get("annotations") or {})
    assert scripts("archive_check", *args, env=env).returncode == 1

    assert scripts("archive", *args, env=env).returncode == 0
    done = scripts("cleanup", *args, env=env)
    assert done.returncode == 0, done.stderr
    # In a shared namespace a label proves nothing: volumes labelled app=<name> or matched by
    # CLEANUP_SELECTORS stay; the StatefulSet's (by the controller's naming) and helm's go.
    assert sorted(left_over(kenv, ns)) == ["PersistentVolumeClaim/by-selector", "PersistentVolumeClaim/hand-made"]
    assert cluster.api("GET", f"/api/v1/namespaces/{ns}/persistentvolumeclaims/other-data")
    assert cluster.api("GET", f"/api/v1/namespaces/{ns}/secrets/sh.helm.release.v1.other.v1")
    again = scripts("cleanup", *args, env=env)
    assert again.returncode == 0, again.stderr


def test_scale_archive_parks_daemonsets_and_suspends_unfinished_jobs(cluster, scripts, octopod_env, namespace):
    """DaemonSets cannot be scaled and a running Job is no workload with replicas: archive parks
    the former (a node selector no node has) and suspends the latter; restore undoes both."""
    env = {"CHART": CHART}
    args = octopod_args(NAME, namespace)
    overrides = ("--deployment-override", "daemonsets=true", "--deployment-override", "job=true")
    ns, kenv = namespace, octopod_env
    with cluster.controller(ns):
        done = scripts("create", *args, "--tag", "v1", *overrides, env=env)
    assert done.returncode == 0, done.stderr
    act_as_controllers(cluster, ns, db_replicas=1)
    # An operator pinned the logs DaemonSet (the chart sets no nodeSelector for it).
    kubectl(kenv, "patch", "daemonset", f"{NAME}-logs", "-n", ns, "--type=merge",
            "--patch", '{"spec":{"template":{"spec":{"nodeSelector":{"disk":"ssd"}}}}}')
    for component in ("agent", "logs", "migrate"):
        cluster.api("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{NAME}-{component}-x", "labels": {
                "app.kubernetes.io/instance": NAME, "app.kubernetes.io/component": component}},
            "spec": {"containers": [{"name": "app", "image": "app"}]}})
    cluster.ready(ns)
    # The migration Job still runs (say, a long one): not complete, one active Pod.
    cluster.api("PATCH", f"/apis/batch/v1/namespaces/{ns}/jobs/{NAME}-migrate/status",
                {"status": {"active": 1, "succeeded": None, "completionTime": None, "conditions": None}},
                "application/merge-patch+json")

    running = scripts("archive_check", *args, env=env)
    assert running.returncode == 1
    assert "daemonset/life-agent: not parked" in running.stderr
    assert "job/life-migrate: not finished and not suspended" in running.stderr

    done = scripts("archive", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower()
    agent, logs = get(kenv, ns, "daemonset/life-agent"), get(kenv, ns, "daemonset/life-logs")
    assert agent["spec"]["template"]["spec"]["nodeSelector"] == {
        "kubernetes.io/os": "linux", "octopod.io/archived": "true"}
    assert logs["spec"]["template"]["spec"]["nodeSelector"] == {"disk": "ssd", "octopod.io/archived": "true"}
    assert json.loads(logs["metadata"]["annotations"][SELECTOR]) == {"disk": "ssd"}
    migrate = get(kenv, ns, "job/life-migrate")
    assert migrate["spec"]["suspend"] is True
    assert migrate["metadata"]["annotations"]["octopod.io/archived-suspend"] == "false"

    pods_left = scripts("archive_check", *args, env=env)
    assert pods_left.returncode == 1 and "pod/life-agent-x: Running" in pods_left.stderr
    assert "daemonset/" not in pods_left.stderr and "job/" not in pods_left.stderr
    stop_pods(cluster, ns)  # the DaemonSet and Job controllers' answer
    archived = scripts("archive_check", *args, env=env)
    assert archived.returncode == 0, archived.stderr

    again = scripts("archive", *args, env=env)  # idempotent: the record is not overwritten with ours
    assert again.returncode == 0, again.stderr
    assert json.loads(get(kenv, ns, "daemonset/life-logs")["metadata"]["annotations"][SELECTOR]) == {"disk": "ssd"}

    with cluster.controller(ns):  # restore = create again, same tag
        done = scripts("create", *args, "--tag", "v1", *overrides, env=env)
    assert done.returncode == 0, done.stderr
    agent, logs = get(kenv, ns, "daemonset/life-agent"), get(kenv, ns, "daemonset/life-logs")
    assert agent["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert logs["spec"]["template"]["spec"]["nodeSelector"] == {"disk": "ssd"}
    migrate = get(kenv, ns, "job/life-migrate")
    assert not migrate["spec"].get("suspend")
    for obj in (agent, logs, migrate):
        assert not any(k.startswith("octopod.io/") for k in obj["metadata"].get("annotations") or {})

    assert scripts("archive", *args, env=env).returncode == 0
    done = scripts("cleanup", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert left_over(kenv, ns) == []


def test_uninstall_archive_restore_cleanup(cluster, scripts, octopod_env, namespace):
    """ARCHIVE_STRATEGY=uninstall with a namespace per deployment, which cleanup deletes."""
    deploy_ns = f"{namespace}-{NAME}"
    env = {"CHART": CHART, "ARCHIVE_STRATEGY": "uninstall", "DEPLOY_NAMESPACE": "{namespace}-{name}",
           "CREATE_NAMESPACE": "true", "CLEANUP_NAMESPACE": "true"}
    args = octopod_args(NAME, namespace)
    kenv = octopod_env

    with cluster.controller(deploy_ns):
        done = scripts("create", *args, "--tag", "v1", env=env)
    assert done.returncode == 0, done.stderr
    act_as_controllers(cluster, deploy_ns, db_replicas=1)
    assert scripts("archive_check", *args, env=env).returncode == 1

    done = scripts("archive", *args, env=env)
    assert done.returncode == 0, done.stderr
    still = scripts("archive_check", *args, env=env)
    assert still.returncode == 1 and "pod/life-db-0: Running" in still.stderr
    stop_pods(cluster, deploy_ns)
    archived = scripts("archive_check", *args, env=env)
    assert archived.returncode == 0, archived.stderr
    pvcs = {p["metadata"]["name"] for p in get(kenv, deploy_ns, "pvc")["items"]}
    assert {"life-uploads", "data-life-db-0"} <= pvcs  # kept, and the StatefulSet's
    assert get(kenv, deploy_ns, "secret/life-creds")
    assert scripts("archive", *args, env=env).returncode == 0  # nothing installed: still success

    with cluster.controller(deploy_ns):  # restore: a fresh install re-adopts the kept objects
        done = scripts("create", *args, "--tag", "v1", env=env)
    assert done.returncode == 0, done.stderr
    assert replicas(kenv, deploy_ns) == {"web": 2, "worker": 1, "db": 1}  # nothing recorded survives

    assert scripts("archive", *args, env=env).returncode == 0
    done = scripts("cleanup", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert left_over(kenv, deploy_ns) == []
    assert cluster.api("GET", f"/api/v1/namespaces/{deploy_ns}") is None
    again = scripts("cleanup", *args, env=env)
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("strategy", ["scale", "uninstall"])
def test_archive_of_a_never_created_name(scripts, namespace, strategy):
    env = {"CHART": CHART, "ARCHIVE_STRATEGY": strategy}
    done = scripts("archive", *octopod_args("never-made", namespace), env=env)
    assert done.returncode == 0, done.stderr
    assert "nothing to archive" in done.stderr
    assert scripts("archive_check", *octopod_args("never-made", namespace), env=env).returncode == 0


def test_cleanup_with_the_api_unreachable(scripts, namespace, dead_kubeconfig):
    started = time.monotonic()
    done = scripts("cleanup", *octopod_args(NAME, namespace), env={"KUBECONFIG": dead_kubeconfig})
    assert done.returncode == 1
    assert "cleanup failed: Kubernetes part skipped: Kubernetes API http://127.0.0.1:9 unreachable" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: cleanup of life: 1 part(s) failed")
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 20


def test_cleanup_with_the_api_hanging_is_bounded(cluster, scripts, namespace):
    started = time.monotonic()
    with cluster.fault("hang", prefix=f"/api/v1/namespaces/{namespace}"):
        done = scripts("cleanup", *octopod_args(NAME, namespace),
                       env={"KUBE_TIMEOUT": "2", "CLEANUP_TIMEOUT": "5"})
    assert done.returncode == 1
    assert "timed out after 2s" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 20


def test_cleanup_never_deletes_a_shared_namespace_and_carries_on(cluster, scripts, namespace):
    cluster.api("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", pvc("hand-made", {"app": NAME}))
    done = scripts("cleanup", *octopod_args(NAME, namespace),
                   env={"CLEANUP_NAMESPACE": "true", "REMOTE_CLEANUP_HOSTS": "127.0.0.1:9",
                        "REMOTE_CLEANUP_COMMANDS": "true", "REMOTE_CONNECT_TIMEOUT": "2"})
    assert done.returncode == 1
    failed = [line for line in done.stderr.splitlines() if line.startswith("cleanup failed: ")]
    assert len(failed) == 2, done.stderr
    assert "has no {name}" in failed[0] and "remote cleanup" in failed[1]
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}")  # the shared namespace stays
    # No release of ours: an unrelated volume labelled app=<name> is not the staging's (issue 11).
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/hand-made")


@pytest.mark.parametrize("bad, message", [
    ({"CLEANUP_NAMESPACE": "maybe"}, "error: CLEANUP_NAMESPACE='maybe': expected true or false"),
    ({"REMOTE_CLEANUP_HOSTS": "127.0.0.1:9", "REMOTE_CLEANUP_COMMANDS": "true", "REMOTE_CONNECT_TIMEOUT": "soon"},
     "error: REMOTE_CONNECT_TIMEOUT='soon': expected a number of seconds"),
    ({"KUBE_TIMEOUT": "-1"}, "error: KUBE_TIMEOUT='-1': expected between 0 and 86400 seconds"),
])
def test_cleanup_refuses_a_bad_setting_before_touching_anything(cluster, scripts, namespace, bad, message):
    """Octopod never retries a cleanup: a setting found bad halfway would leave the rest undone."""
    cluster.api("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", pvc("hand-made", {"app": NAME}))
    done = scripts("cleanup", *octopod_args(NAME, namespace), env=bad)
    assert done.returncode == 78, done.stderr
    assert done.stderr.strip() == message
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/hand-made")


def test_cleanup_bounds_the_remote_part_by_what_is_left_of_cleanup_timeout(scripts, namespace):
    with socket.socket() as silent:  # accepts the TCP connection, never says a word of SSH
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        done = scripts("cleanup", *octopod_args(NAME, namespace), env={
            "CLEANUP_TIMEOUT": "3", "REMOTE_CLEANUP_HOSTS": f"127.0.0.1:{silent.getsockname()[1]}",
            "REMOTE_CLEANUP_COMMANDS": "true", "REMOTE_CONNECT_TIMEOUT": "120",
            "REMOTE_STRICT_HOST_KEYS": "false"}, timeout=60)
        elapsed = time.monotonic() - started
    assert done.returncode == 1
    failed = [line for line in done.stderr.splitlines() if line.startswith("cleanup failed: ")]
    assert len(failed) == 1 and "remote cleanup" in failed[0] and "commands not run: true" in failed[0], done.stderr
    assert elapsed < 30, elapsed  # CLEANUP_TIMEOUT's 3 s plus slack; the connect timeout alone, 120 s


def test_an_unknown_strategy_is_a_configuration_error(scripts, namespace):
    done = scripts("archive", *octopod_args(NAME, namespace), env={"ARCHIVE_STRATEGY": "delete"})
    assert done.returncode == 78
    assert done.stderr.strip() == "error: ARCHIVE_STRATEGY='delete': expected scale or uninstall"


def test_pvc_selectors_and_rendered_specs():
    from octopod_control.actions.cleanup import pvc_selectors
    from octopod_control.args import Deployment
    from octopod_control.manifest import claim_templates, specs
    from octopod_control.settings import Settings

    settings = Settings({"CLEANUP_SELECTORS": " team/staging={name} ; app={name};tier=db,app={name} "})
    assert pvc_selectors(settings, Deployment("feat", "ns")) == [
        "team/staging=feat", "app=feat", "tier=db,app=feat"]
    assert pvc_selectors(Settings({}), Deployment("feat", "ns")) == []  # no app={name} default
    manifest = ("---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n"
                "---\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  serviceName: db\n"
                "  volumeClaimTemplates:\n  - metadata:\n      name: data\n  - metadata:\n      name: logs\n")
    assert claim_templates(manifest) == [("data", "db"), ("logs", "db")]
    rendered = specs(manifest)
    assert "replicas" in rendered[("Deployment", "web")] and "replicas" not in rendered[("StatefulSet", "db")]
    assert specs("") is None and specs(None) is None and claim_templates(None) == []


@pytest.mark.parametrize("rendered_selector, live, record, expected", [
    # the chart sets one (helm put it back, or kept ours beside it): only our key goes
    ({"zone": "a"}, {"zone": "a", "octopod.io/archived": "true"}, '{"zone": "old"}', {"zone": "a"}),
    ({"zone": "a"}, {"zone": "a"}, '{}', {"zone": "a"}),  # helm 4 SSA replaced the atomic map
    # the chart sets none: the recorded selector fills in
    (None, {"octopod.io/archived": "true"}, '{"disk": "ssd"}', {"disk": "ssd"}),
    (None, {"octopod.io/archived": "true"}, '{}', None),
    # an unreadable record: our key still goes
    (None, {"disk": "ssd", "octopod.io/archived": "true"}, 'not json', {"disk": "ssd"}),
    (None, {"octopod.io/archived": "true"}, '["x"]', None),
])
def test_restore_always_unparks_a_daemonset(rendered_selector, live, record, expected):
    from octopod_control.kinds import daemonset
    from octopod_control.restoring import restore_one
    from octopod_dev.emulator.kube_emu import merge_patch

    spec = {"template": {"spec": {"containers": []}}}
    if rendered_selector is not None:
        spec["template"]["spec"]["nodeSelector"] = rendered_selector
    obj = {"metadata": {"name": "agent", "annotations": {SELECTOR: record, "keep": "me"}},
           "spec": {"template": {"spec": {"nodeSelector": live}}}}
    patches = []

    class Kubectl:
        def patch(self, kind, name, namespace, patch):
            patches.append((kind, name, namespace, patch))

    restore_one(Kubectl(), daemonset.KIND, obj, "ns", {("DaemonSet", "agent"): spec})
    (kind, name, namespace, patch), = patches
    assert (kind, name, namespace) == ("DaemonSet", "agent", "ns")
    after = merge_patch(obj, patch)
    assert after["metadata"]["annotations"] == {"keep": "me"}
    assert after["spec"]["template"]["spec"].get("nodeSelector") == expected
    # No manifest to ask (none readable): only our key goes.
    patches.clear()
    restore_one(Kubectl(), daemonset.KIND, obj, "ns", None)
    after = merge_patch(obj, patches[0][3])
    left = {k: v for k, v in live.items() if k != "octopod.io/archived"}
    assert after["spec"]["template"]["spec"].get("nodeSelector") == (left or None)
