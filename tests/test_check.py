"""check end to end through scripts/check against the emulator, plus unit tests of each
readiness rule on plain dicts. States are driven the way a cluster shows them: status
patches on /status subresources and Pods whose containers wait with a reason.

A test that creates a release runs once with each helm (check reads the record that helm
wrote); one that never gets a release (a missing release, an unusable kubeconfig, an API that
cannot be reached) runs once, without helm: check itself never runs a subprocess."""
from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import time

import pytest

from octopod_control.kinds import FAILED, PARTIAL, READY, daemonset, deployment, job, pods, statefulset
from octopod_control.manifest import objects as manifest_objects
from octopod_control.release_record import decode, release_value
from tests.conftest import ROOT, run_script, tool, without_helm

CHART = str(ROOT / "tests" / "charts" / "workloads")
MERGE = "application/merge-patch+json"


# -- helpers: create a release, act as the controllers ------------------------------------
def create(scripts, name: str, *args: str, tag: str = "v1", env: dict | None = None,
           chart: str = CHART) -> None:
    done = scripts("create", "--name", name, "--tag", tag, *args,
                   env={"HELM_WAIT": "false", "CHART": chart, **(env or {})})
    assert done.returncode == 0, done.stderr


def check(scripts, name: str, *args: str, env: dict | None = None):
    done = scripts("check", "--name", name, *args, env=env, timeout=60)
    assert done.stdout == "", "check prints nothing on stdout"
    return done


def set_status(cluster, namespace: str, path: str, status: dict) -> None:
    obj = cluster.api("GET", f"{path}")
    status.setdefault("observedGeneration", obj["metadata"].get("generation", 1))
    cluster.api("PATCH", f"{path}/status", {"status": status}, MERGE)


def deploy_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


def deploy_status(cluster, namespace: str, name: str, want: int, available: int) -> None:
    set_status(cluster, namespace, deploy_path(namespace, name),
               {"replicas": want, "updatedReplicas": want, "readyReplicas": available,
                "availableReplicas": available})


def add_pod(cluster, namespace: str, name: str, labels: dict, container: dict) -> None:
    """A Pod of a workload; its container status as the kubelet reports it."""
    cluster.api("POST", f"/api/v1/namespaces/{namespace}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": container["name"], "image": container.get("image", "x")}]}})
    cluster.api("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}/status", {"status": {
        "phase": "Running" if "running" in container["state"] else "Pending",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [dict(container, ready=False)]}}, MERGE)


def app_labels(release: str, index: int = 0) -> dict:
    return {"app.kubernetes.io/instance": release, "workload": f"d{index}"}


# -- end to end ----------------------------------------------------------------------------
def test_not_ready_then_ready_and_tag(cluster, scripts, namespace):
    create(scripts, "web")
    done = check(scripts, "web")
    assert done.returncode == 1
    assert "deployment/web-d0: failed, 0/1 available" in done.stderr
    cluster.ready(namespace)
    assert check(scripts, "web").returncode == 0
    assert check(scripts, "web", "--tag", "v1").returncode == 0
    mismatch = check(scripts, "web", "--tag", "v2")
    assert mismatch.returncode == 3
    assert "runs tag v1" in mismatch.stderr and "requested v2" in mismatch.stderr


def test_tag_mismatch_wins_over_readiness(scripts):
    create(scripts, "stale")
    done = check(scripts, "stale", "--tag", "v2")
    assert done.returncode == 3, done.stderr


def test_partial_with_crashloop_reasons(cluster, scripts, namespace):
    create(scripts, "part", "--deployment-override", "replicas=3")
    deploy_status(cluster, namespace, "part-d0", want=3, available=1)
    crash = {"name": "app", "image": "registry.example.com/example/app:v1", "restartCount": 5,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
             "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
    for i in (1, 2):
        add_pod(cluster, namespace, f"part-d0-{i}", app_labels("part"), crash)
    done = check(scripts, "part")
    assert done.returncode == 2, done.stderr
    line, = done.stderr.splitlines()
    assert line.startswith("deployment/part-d0: partial, 1/3 available")
    assert "container app: CrashLoopBackOff (5 restarts, last exit code 137 (OOMKilled)) (2 pods)" in line


def test_image_pull_backoff_reported_with_image(cluster, scripts, namespace):
    create(scripts, "pull", tag="nope")
    add_pod(cluster, namespace, "pull-d0-x", app_labels("pull"), {
        "name": "app", "image": "registry.example.com/example/app:nope", "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}})
    done = check(scripts, "pull")
    assert done.returncode == 1
    assert "ImagePullBackOff (image registry.example.com/example/app:nope)" in done.stderr


def test_scaled_to_zero_is_ready(cluster, scripts, namespace):
    create(scripts, "zero", "--deployment-override", "replicas=0")
    cluster.ready(namespace)  # the controller records the generation; no pods
    assert check(scripts, "zero").returncode == 0


def test_failed_job_and_other_kinds(cluster, scripts, namespace):
    create(scripts, "kinds", "--deployment-override", "statefulset=true",
           "--deployment-override", "daemonset=true", "--deployment-override", "job=true")
    cluster.ready(namespace)
    assert check(scripts, "kinds").returncode == 0
    set_status(cluster, namespace, f"/apis/batch/v1/namespaces/{namespace}/jobs/kinds-migrate",
               {"failed": 2, "conditions": [{"type": "Failed", "status": "True",
                                             "reason": "BackoffLimitExceeded",
                                             "message": "Job has reached the specified backoff limit"}]})
    done = check(scripts, "kinds")
    assert done.returncode == 1
    assert "job/kinds-migrate: failed" in done.stderr and "BackoffLimitExceeded" in done.stderr


def test_statefulset_rollout_in_progress_is_partial(cluster, scripts, namespace):
    create(scripts, "sts", "--deployment-override", "deployments=0", "--deployment-override", "statefulset=true")
    path = f"/apis/apps/v1/namespaces/{namespace}/statefulsets/sts-db"
    set_status(cluster, namespace, path, {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                                          "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "b"})
    done = check(scripts, "sts")
    assert done.returncode == 2 and "rolling update in progress" in done.stderr


def test_kstatus_cases_through_check(cluster, scripts, namespace):
    """Three of kstatus's cases (tests/test_kinds.py has its whole table) as check reports them:
    each counts met, each not ready, with the reason kstatus names."""
    create(scripts, "ks", "--deployment-override", "statefulset=true", "--deployment-override", "daemonset=true")
    cluster.ready(namespace)
    assert check(scripts, "ks").returncode == 0
    set_status(cluster, namespace, deploy_path(namespace, "ks-d0"), {  # depNotAvailable
        "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
                       {"type": "Available", "status": "False"}]})
    set_status(cluster, namespace, f"/apis/apps/v1/namespaces/{namespace}/statefulsets/ks-db", {  # stsExtraPods
        "replicas": 4, "readyReplicas": 2, "currentReplicas": 2, "updatedReplicas": 2,
        "currentRevision": "r", "updateRevision": "r"})
    set_status(cluster, namespace, f"/apis/apps/v1/namespaces/{namespace}/daemonsets/ks-agent", {  # dsLessReady
        "desiredNumberScheduled": 4, "currentNumberScheduled": 4, "updatedNumberScheduled": 4,
        "numberAvailable": 4, "numberReady": 2})
    done = check(scripts, "ks")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "deployment/ks-d0: partial, 1/1 available, 1 updated: not available (Available)",
        "statefulset/ks-db: partial, 2/2 ready: 2 pods more than the 2 wanted, pending termination",
        "daemonset/ks-agent: partial, 4/4 available, 4 updated: 2/4 ready"]


def test_workload_deleted_by_hand_is_a_failure(cluster, scripts, namespace):
    create(scripts, "gone", "--deployment-override", "deployments=2")
    cluster.ready(namespace)
    cluster.api("DELETE", deploy_path(namespace, "gone-d1"))
    done = check(scripts, "gone")
    assert done.returncode == 1 and "deployment/gone-d1: failed: in the release but not in the cluster" in done.stderr


def test_a_job_deleted_by_its_ttl_is_not_a_failure(cluster, scripts, namespace):
    """ttlSecondsAfterFinished: the Job ran, the TTL controller deleted it, the release still lists it."""
    create(scripts, "ttl", "--deployment-override", "job=true")
    cluster.ready(namespace)
    assert check(scripts, "ttl").returncode == 0
    cluster.api("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/ttl-migrate")
    done = check(scripts, "ttl")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    cluster.api("DELETE", deploy_path(namespace, "ttl-d0"))  # a Deployment gone is still a failure
    done = check(scripts, "ttl")
    assert done.returncode == 1 and "deployment/ttl-d0: failed: in the release but not in the cluster" in done.stderr
    assert "job/" not in done.stderr


@without_helm
def test_missing_release(scripts):
    done = check(scripts, "absent", "--tag", "v1")
    assert done.returncode == 1 and "release absent not found" in done.stderr


def test_only_namespace_and_name(cluster, scripts, octopod_env, namespace):
    create(scripts, "bare")
    cluster.ready(namespace)
    env = {k: v for k, v in octopod_env.items() if k not in ("NAMESPACE", "PROJECT_NAME", "BASE_DOMAIN")}
    done = run_script("check", "--namespace", namespace, "--name", "bare", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_configmap_driver(cluster, scripts, namespace):
    create(scripts, "cm", env={"HELM_DRIVER": "configmap"})
    cluster.ready(namespace)
    assert check(scripts, "cm", "--tag", "v1", env={"HELM_DRIVER": "configmap"}).returncode == 0
    assert check(scripts, "cm", "--tag", "v2", env={"HELM_DRIVER": "configmap"}).returncode == 3
    assert "not found" in check(scripts, "cm").stderr  # the secret driver has no record of it


@pytest.mark.parametrize("helm_bin", ["helm3"], indirect=True)
def test_helm3_release_record_then_a_helm4_upgrade(cluster, scripts, namespace):
    """Switching HELM_BIN from helm 3 to 4: check reads helm 3's records, then helm 4's
    revision on top of them (every other end-to-end check test runs with each helm alone)."""
    create(scripts, "h3")
    cluster.ready(namespace)
    assert check(scripts, "h3", "--tag", "v1").returncode == 0
    assert check(scripts, "h3", "--tag", "v0").returncode == 3
    create(scripts, "h3", tag="v2", env={"HELM_BIN": tool("helm4")})
    cluster.ready(namespace)
    assert check(scripts, "h3", "--tag", "v2").returncode == 0
    stale = check(scripts, "h3", "--tag", "v1")
    assert stale.returncode == 3 and "runs tag v2" in stale.stderr, stale.stderr


def test_request_count_does_not_grow_with_the_release(cluster, scripts, namespace):
    counts = {}
    for name, size in (("one", 1), ("ten", 10)):
        create(scripts, name, "--deployment-override", f"deployments={size}")
        cluster.ready(namespace)
        cluster.reset_requests()
        assert check(scripts, name).returncode == 0
        counts[size] = len([r for r in cluster.requests() if f"/namespaces/{namespace}/" in r[1]])
        assert len(cluster.requests()) == counts[size], "check sends no other request"
    assert counts[1] == counts[10] == 2  # release records + Deployments


@without_helm
def test_api_unreachable(scripts, dead_kubeconfig):
    done = check(scripts, "web", env={"KUBECONFIG": dead_kubeconfig})
    assert done.returncode == 1
    assert done.stderr == "error: Kubernetes API http://127.0.0.1:9 unreachable: Connection refused\n"


@without_helm
def test_api_that_never_answers_is_bounded_by_kube_timeout(scripts, tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        done = check(scripts, "web", env={"KUBECONFIG": _kubeconfig(tmp_path, silent.getsockname()[1]),
                                          "KUBE_TIMEOUT": "1"})
        elapsed = time.monotonic() - started
    assert done.returncode == 1
    # KUBE_TIMEOUT's own message (its default, 10 s, would say 10s), and the request it bounded.
    assert "GET /api/v1/namespaces/" in done.stderr and "timed out after 1s" in done.stderr, done.stderr
    assert elapsed < 10, elapsed


class _Server:
    """A fake API server on 127.0.0.1 that answers every request with `answer(conn)`."""

    def __init__(self, answer) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.answer, self.stop = answer, threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn) -> None:
        with conn, conn.makefile("rb") as reader:
            try:
                while not self.stop.is_set():
                    while (line := reader.readline()) not in (b"\r\n", b""):
                        pass
                    if not line:
                        return
                    self.answer(conn, self.stop)
            except OSError:
                return

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.sock.close()


def _trickle(conn, stop) -> None:
    """A status line and headers, then the body one byte every 0.2 s: each read gets data in time."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n")
    for _ in range(200):
        if stop.wait(0.2):
            return
        conn.sendall(b" ")


def _endless_pages(conn, stop) -> None:
    """Every LIST page, promptly, says there is another one."""
    stop.wait(0.1)
    body = json.dumps({"kind": "SecretList", "items": [], "metadata": {"continue": "more"}}).encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)


@without_helm
@pytest.mark.parametrize("answer", [_trickle, _endless_pages])
def test_an_api_call_is_bounded_as_a_whole_by_kube_timeout(scripts, tmp_path, answer):
    """A trickling answer or a LIST that never ends: KUBE_TIMEOUT bounds the call, not each read."""
    with _Server(answer) as server:
        started = time.monotonic()
        done = check(scripts, "web", env={"KUBECONFIG": _kubeconfig(tmp_path, server.port), "KUBE_TIMEOUT": "1"})
        elapsed = time.monotonic() - started
    assert done.returncode == 1
    assert "GET /api/v1/namespaces/" in done.stderr and "timed out after 1s" in done.stderr, done.stderr
    # The trickle alone lasts 40 s: only a bound on the whole call ends the run this soon.
    assert elapsed < 15, elapsed


@pytest.mark.parametrize("change, message", [
    (lambda c: c["clusters"][0]["cluster"].pop("server"), "cluster 'c' has no server"),
    (lambda c: c["clusters"][0]["cluster"].update({"certificate-authority-data": "not base64!"}),
     "certificate-authority-data is not valid base64"),
    (lambda c: c["users"][0]["user"].update({"client-key-data": "@@@", "client-certificate-data": "QQ=="}),
     "client-key-data is not valid base64"),
    (lambda c: c["contexts"].insert(0, "c"), "an entry of contexts is not a mapping"),
    (lambda c: c["clusters"][0].update({"cluster": "http://127.0.0.1"}), "cluster 'c' has no cluster: mapping"),
    (lambda c: c["users"][0].update({"user": ["t"]}), "user 'u' has no user: mapping"),
    (lambda c: c.update({"current-context": "nope"}), "context 'nope' is not in contexts"),
    (lambda c: c["users"][0]["user"].update({"token": None, "exec": {"args": ["x"]}}), "user.exec has no command"),
])
@without_helm
def test_an_unusable_kubeconfig_is_one_configuration_error(scripts, tmp_path, change, message):
    config = json.loads(open(_kubeconfig(tmp_path, 9)).read())
    change(config)
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    done = check(scripts, "web", env={"KUBECONFIG": str(path)})
    assert done.returncode == 78, done.stderr
    assert done.stderr == f"error: KUBECONFIG: {path}: {message}\n"


def _exec_kubeconfig(tmp_path, script: str) -> str:
    plugin = tmp_path / "plugin"
    plugin.write_text("#!/bin/sh\n" + script)
    plugin.chmod(0o755)
    config = json.loads(open(_kubeconfig(tmp_path, 9)).read())
    config["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                           "command": str(plugin), "env": [{"name": "FROM_CONFIG", "value": "c"}]}}
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    return str(path)


@without_helm
def test_an_exec_plugin_that_hangs_is_killed_with_its_children(scripts, tmp_path):
    # The child keeps the plugin's stdout open: killing the plugin alone would still wait for it.
    path = _exec_kubeconfig(tmp_path, "sleep 120 &\nsleep 120\n")
    started = time.monotonic()
    done = check(scripts, "web", env={"KUBECONFIG": path, "KUBE_TIMEOUT": "1"})
    elapsed = time.monotonic() - started
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: kubeconfig exec plugin {tmp_path / 'plugin'}: timed out after 1s"
    assert elapsed < 20, elapsed  # about 1.2 s: KUBE_TIMEOUT plus slack; a child left running, 120 s


def test_an_exec_plugin_runs_in_the_settings_environment(tmp_path):
    """Values from the env files reach the plugin (Settings.environ()), not only the process's own."""
    from octopod_control.kube import client_for
    from octopod_control.settings import Settings

    path = _exec_kubeconfig(tmp_path, 'echo "plugin says $PLUGIN_HINT" >&2; [ "$FROM_FILE" = f ] || exit 3\n'
                                      'echo \'{"status": {"token": "\'"$FROM_FILE$FROM_CONFIG"\'"}}\'\n')
    client = client_for(Settings({"KUBECONFIG": path, "FROM_FILE": "f", "PATH": "/usr/bin:/bin"}))
    assert client.creds.token == "fc"
    from octopod_control.errors import ExternalError

    with pytest.raises(ExternalError, match=r"failed with exit code 3: plugin says login first$"):
        client_for(Settings({"KUBECONFIG": path, "PLUGIN_HINT": "login first", "PATH": "/usr/bin:/bin"}))


def _kubeconfig(directory, port: int) -> str:
    """A kubeconfig (in the test's own tmp_path) for an API server on 127.0.0.1:port."""
    path = directory / f"kubeconfig-{port}.yaml"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return str(path)


# -- unit: readiness rules on plain dicts -------------------------------------------------
def dep(want=3, gen=1, observed=1, updated=3, replicas=3, available=3, **extra):
    status = {"observedGeneration": observed, "updatedReplicas": updated, "replicas": replicas,
              "availableReplicas": available, **extra}
    return {"metadata": {"name": "d", "generation": gen}, "spec": {"replicas": want}, "status": status}


@pytest.mark.parametrize("obj, state", [
    (dep(), READY),
    (dep(want=0, updated=0, replicas=0, available=0), READY),
    (dep(gen=2), PARTIAL),  # the new spec is not observed yet, old pods serve
    (dep(available=1), PARTIAL),
    (dep(replicas=4), PARTIAL),  # an old replica pending termination
    (dep(updated=0, replicas=0, available=0), FAILED),
    ({"metadata": {"name": "d", "generation": 1}, "spec": {}}, FAILED),  # replicas default to 1
])
def test_deployment_rules(obj, state):
    assert deployment.verdict(obj).state == state


def test_deployment_reports_progress_deadline():
    obj = dep(available=0, conditions=[{"type": "Progressing", "status": "False",
                                        "reason": "ProgressDeadlineExceeded"}])
    assert "progress deadline exceeded" in deployment.verdict(obj).line()


def sts(want=2, ready=2, updated=2, current="r1", update="r1", strategy=None):
    return {"metadata": {"name": "s", "generation": 1},
            "spec": {"replicas": want, "updateStrategy": strategy or {"type": "RollingUpdate"}},
            "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": updated,
                       "currentRevision": current, "updateRevision": update}}


@pytest.mark.parametrize("obj, state", [
    (sts(), READY),
    (sts(ready=1), PARTIAL),
    (sts(ready=0), FAILED),
    (sts(current="r1", update="r2", updated=1), PARTIAL),
    (sts(current="r1", update="r2", updated=1,
         strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}), READY),
    (sts(current="r1", update="r2", updated=0,
         strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}), PARTIAL),
    (sts(current="r1", update="r2", updated=0, strategy={"type": "OnDelete"}), READY),
])
def test_statefulset_rules(obj, state):
    assert statefulset.verdict(obj).state == state


def ds(desired=2, updated=2, available=2, strategy="RollingUpdate"):
    return {"metadata": {"name": "a", "generation": 1}, "spec": {"updateStrategy": {"type": strategy}},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": desired,
                       "updatedNumberScheduled": updated, "numberAvailable": available,
                       "numberReady": available}}


@pytest.mark.parametrize("obj, state", [
    (ds(), READY), (ds(0, 0, 0), READY), (ds(available=1), PARTIAL), (ds(updated=1), PARTIAL),
    (ds(available=0), FAILED), (ds(updated=1, strategy="OnDelete"), READY),
])
def test_daemonset_rules(obj, state):
    assert daemonset.verdict(obj).state == state


@pytest.mark.parametrize("status, state", [
    ({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}, READY),
    ({"failed": 2, "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}, FAILED),
    ({"active": 1, "ready": 1}, PARTIAL),
    ({"active": 1, "ready": 0}, FAILED),
    ({}, FAILED),
])
def test_job_rules(status, state):
    verdict = job.verdict({"metadata": {"name": "j"}, "spec": {}, "status": status})
    assert verdict.state == state
    if state == FAILED and status.get("failed"):
        assert "DeadlineExceeded" in verdict.line()


def pod(containers=(), init=(), phase="Pending", conditions=()):
    return {"spec": {"containers": [{"name": "app", "image": "img:1"}]},
            "status": {"phase": phase, "conditions": list(conditions),
                       "containerStatuses": list(containers), "initContainerStatuses": list(init)}}


def test_pod_reasons():
    waiting = lambda reason, **kw: {"name": "app", "state": {"waiting": {"reason": reason, **kw}}}
    assert pods.pod_reasons(pod([waiting("ErrImagePull")])) == ["container app: ErrImagePull (image img:1)"]
    assert pods.pod_reasons(pod([waiting("CreateContainerConfigError", message='secret "db" not found')])) == [
        'container app: CreateContainerConfigError: secret "db" not found']
    crash = dict(waiting("CrashLoopBackOff"), restartCount=3, lastState={"terminated": {"exitCode": 1}})
    assert pods.pod_reasons(pod([crash])) == ["container app: CrashLoopBackOff (3 restarts, last exit code 1)"]
    init = {"name": "migrate", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}
    assert pods.pod_reasons(pod(init=[init])) == ["init container migrate: exited with exit code 2"]
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": "0/3 nodes are available: 3 Insufficient cpu."}
    assert pods.pod_reasons(pod(conditions=[unschedulable])) == [
        "unschedulable: 0/3 nodes are available: 3 Insufficient cpu."]
    assert pods.pod_reasons(pod(phase="Failed") | {"status": {"phase": "Failed", "reason": "Evicted"}}) == [
        "pod failed: Evicted"]
    ready = pod(phase="Running", conditions=[{"type": "Ready", "status": "True"}])
    assert pods.pod_reasons(ready) == []
    many = [pod([waiting(f"Reason{i}")]) for i in range(7)]
    assert pods.summarize(many)[-1] == "and 2 more"


# -- unit: helm's release record ------------------------------------------------------------
def test_decode_release_record_both_drivers():
    release = {"name": "r", "version": 2, "config": {"app": {"tag": "v9"}},
               "chart": {"values": {"app": {"tag": "latest", "image": "i"}}}, "info": {"status": "deployed"}}
    helm_text = base64.b64encode(gzip.compress(json.dumps(release).encode())).decode()
    secret = {"data": {"release": base64.b64encode(helm_text.encode()).decode()}}
    assert decode(secret, "secret") == release
    assert decode({"data": {"release": helm_text}}, "configmap") == release
    assert release_value(release, ("app", "tag")) == "v9"
    assert release_value(release, ("app", "image")) == "i"  # chart default
    assert release_value(release, ("app", "nope")) is None


def test_manifest_objects():
    manifest = ("---\n# Source: x/templates/a.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
                "  labels:\n    name: not-this\n  name: \"web\"\nspec:\n  template:\n    metadata:\n"
                "      name: nested\n---\nkind: StatefulSet\nmetadata:\n    namespace: other\n    name: db\n")
    assert manifest_objects(manifest) == [("Deployment", "web", None), ("StatefulSet", "db", "other")]


# -- unit: the HTTP transport handles chunked bodies and keep-alive -----------------------
def test_http1_chunked_and_keepalive():
    from octopod_control.http1 import Connection

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve():
        conn, _ = server.accept()
        with conn, conn.makefile("rb") as reader:
            for body in (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n5\r\n\": 1}\r\n0\r\n\r\n",
                         b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}"):
                while reader.readline() not in (b"\r\n", b""):
                    pass
                conn.sendall(body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = Connection("127.0.0.1", server.getsockname()[1], 5)
    try:
        client.request("GET", "/a")
        first = client.getresponse()
        client.request("GET", "/b")
        second = client.getresponse()
    finally:
        client.close()
        server.close()
    assert (first.status, json.loads(first.read())) == (200, {"a": 1})
    assert (second.status, second.read()) == (404, b"{}")
