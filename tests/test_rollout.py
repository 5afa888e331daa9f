"""create and update following the rollout (octopod_control/rollout.py): progress while helm
waits, fail fast on what will not fix itself, a diagnosis on every failure, the release left
consistent; with the kinds' knowledge under it (which Pods are a workload's, which states are
final) and the emulator's pod logs and Events.

End to end, through scripts/create and scripts/update with real helm: the tests play the
deployment controller and the kubelet (cluster.kubelet: a ReplicaSet owned by the
Deployment, Pods owned by it, their container statuses, events and logs), as the other
end-to-end tests play the controllers for readiness. The rules of each fail-fast and
non-final state, which do not depend on helm, run with helm 4 alone; the rest with each helm.
Progress and FailFast are pure functions of the looks and a clock: their unit tests run
minutes of simulated time in milliseconds.
"""
from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
import urllib.error

import pytest

from octopod_control.kinds import BY_NAME, Verdict, deployment, job, statefulset
from octopod_control.kinds.pods import owned, stuck
from octopod_control.process import Redactor
from octopod_control.rollout import BURST, FailFast, Progress, Seen, latest_events, log_tail
from tests.conftest import ROOT, without_helm
from octopod_dev.emulator.cluster import in_background

CHART = str(ROOT / "tests" / "charts" / "workloads")
MERGE = "application/merge-patch+json"
IMAGE = "registry.example.com/example/app:nope"
PULL = {"state": {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{IMAGE}"'}}}
CRASH = {"state": {"waiting": {"reason": "CrashLoopBackOff",
                               "message": "back-off 40s restarting failed container=app"}},
         "restartCount": 3, "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}


def args(name: str, namespace: str, *extra: str) -> list[str]:
    return ["--project-name", "demo", "--base-domain", "staging.example.com", "--namespace", namespace,
            "--name", name, *extra]


def deploy(scripts, script: str, name: str, namespace: str, *extra: str, env: dict | None = None):
    """scripts/<script> with HELM_WAIT on, timed; (the completed process, seconds)."""
    started = time.monotonic()
    done = scripts(script, *args(name, namespace, *extra),
                   env={"CHART": CHART, "HELM_WAIT": "true", "FAIL_FAST_GRACE": "2", **(env or {})})
    assert done.stdout == "", "create and update print nothing on stdout"
    assert "Traceback" not in done.stderr
    return done, time.monotonic() - started


def history(env: dict, name: str, namespace: str) -> list[tuple[int, str]]:
    out = subprocess.run([env["HELM_BIN"], "history", name, "-n", namespace, "-o", "json"], env=env,
                         capture_output=True, text=True, timeout=60)
    return [(r["revision"], r["status"]) for r in json.loads(out.stdout)] if out.returncode == 0 else []


@contextlib.contextmanager
def driving(cluster, path: str, status: dict):
    """While the block runs, give the object at `path` this status once helm has applied it
    (observedGeneration its generation), as its controller would."""
    def step() -> None:
        obj = cluster.api("GET", path)
        if obj and (obj.get("status") or {}).get("observedGeneration") != obj["metadata"].get("generation"):
            full = dict(status, observedGeneration=obj["metadata"].get("generation", 1))
            cluster.api("PATCH", f"{path}/status", {"status": full}, MERGE)

    with in_background(step, 0.2):
        yield


# -- end to end: fail fast, diagnose, then an update fixes it (each helm) ----------------------
def test_an_image_that_cannot_be_pulled_fails_fast_then_an_update_fixes_it(cluster, scripts, octopod_env,
                                                                           namespace):
    def kubelet_events(pod):
        cluster.event(pod, "Failed", f'Failed to pull image "{IMAGE}": manifest unknown', count=3)
        cluster.event(pod, "Failed", f'Failed to pull image "{IMAGE}": manifest unknown', count=2)
        cluster.event(pod, "Failed", "Error: ImagePullBackOff")

    with cluster.kubelet(namespace, "pull-d0", PULL, then=kubelet_events):
        done, took = deploy(scripts, "create", "pull", namespace, "--tag", "nope")
    err = done.stderr
    assert done.returncode == 1, err
    assert took < 25, f"stopped {took:.0f}s in; HELM_TIMEOUT is 60s"
    assert "[octopod] deployment/pull-d0: not ready" in err  # progress while waiting
    assert "[octopod] failing fast: deployment/pull-d0: pod pull-d0-" in err
    assert f"container app: ImagePullBackOff (image {IMAGE}), for " in err
    # The diagnosis: the verdict, the pod's container state, its events deduplicated and counted.
    assert "[octopod] diagnosis of pull (revision 1): 1 of 1 workloads not ready" in err
    assert f'container app: waiting: ImagePullBackOff: Back-off pulling image "{IMAGE}"' in err
    assert f'event Failed (x5): Failed to pull image "{IMAGE}": manifest unknown' in err
    assert "event Failed: Error: ImagePullBackOff" in err
    assert err.strip().splitlines()[-1].startswith("error: rollout of pull failed fast, ")
    assert err.strip().endswith("the diagnosis is above; release pull is at revision 1, failed")
    assert history(octopod_env, "pull", namespace) == [(1, "failed")]

    with cluster.controller(namespace):
        fixed, _ = deploy(scripts, "update", "pull", namespace, "--tag", "v1")
    assert fixed.returncode == 0, fixed.stderr
    (first, was), latest = history(octopod_env, "pull", namespace)
    assert first == 1 and was in ("failed", "superseded") and latest == (2, "deployed")  # helm 3 supersedes it
    assert scripts("check", *args("pull", namespace, "--tag", "v1")).returncode == 0


def test_a_crash_loop_shows_the_crashed_instance_log_tail_redacted(cluster, scripts, namespace):
    secret = "pw-" + namespace
    log = "".join(f"line {i}: " + (f"connecting with password {secret}\n" if i == 28 else "ok\n")
                  for i in range(1, 31))

    def kubelet(pod):
        name = pod["metadata"]["name"]
        cluster.set_log(namespace, name, "app", log, previous=True)
        cluster.set_log(namespace, name, "app", "the instance waiting to restart logs nothing\n")
        cluster.event(pod, "BackOff", "Back-off restarting failed container app in pod " + name)

    with cluster.kubelet(namespace, "crash-d0", CRASH, then=kubelet):
        done, took = deploy(scripts, "create", "crash", namespace, "--tag", "v1",
                            "--app-env-override", f"DB_PASSWORD={secret}",
                            env={"LOG_TAIL_LINES": "5", "FAIL_FAST_GRACE": "300"})
    err = done.stderr
    assert done.returncode == 1, err
    assert took < 25  # at once: the restart threshold, not the 300 s grace
    assert "failing fast: deployment/crash-d0: pod crash-d0-" in err
    assert "CrashLoopBackOff (3 restarts, last exit code 1)" in err
    assert "container app: waiting: CrashLoopBackOff: back-off 40s restarting failed container=app; " \
           "3 restarts; last exited with exit code 1" in err
    assert "event BackOff: Back-off restarting failed container app" in err
    assert "log of container app (the crashed instance's last 5 lines):" in err
    shown = [line.split("| ", 1)[1] for line in err.splitlines() if "      | " in line]
    assert shown == ["line 26: ok", "line 27: ok", "line 28: connecting with password ***", "line 29: ok",
                     "line 30: ok"]
    assert secret not in err


def test_a_release_helm_could_not_mark_is_recovered(cluster, scripts, octopod_env, namespace, tmp_path):
    """A helm that dies on SIGKILL before it marks the release (here: a wrapper that kills it so)
    leaves it pending; create recovers it at once: a first install is removed, an upgrade rolled
    back. The next create and update need no manual step."""
    hard = tmp_path / "helm-killed-hard"
    hard.write_text("#!/bin/bash\nexec 3<&0\n"
                    f'setsid {octopod_env["HELM_BIN"]} "$@" <&3 3<&- &\n'
                    "pid=$!\ntrap 'kill -KILL $pid; exit 143' TERM\nwait $pid\n")
    hard.chmod(0o755)
    with cluster.kubelet(namespace, "hard-d0", PULL):
        first, _ = deploy(scripts, "create", "hard", namespace, "--tag", "nope", env={"HELM_BIN": str(hard)})
    assert first.returncode == 1, first.stderr
    assert "left pending-install by an interrupted run and never deployed; removing it" in first.stderr
    assert first.stderr.strip().endswith("release hard is not installed")
    assert history(octopod_env, "hard", namespace) == []

    with cluster.controller(namespace):
        good, _ = deploy(scripts, "create", "hard", namespace, "--tag", "v1")
    assert good.returncode == 0, good.stderr
    with cluster.kubelet(namespace, "hard-d0", PULL):
        bad, _ = deploy(scripts, "update", "hard", namespace, "--tag", "nope", env={"HELM_BIN": str(hard)})
    assert bad.returncode == 1, bad.stderr
    assert "left pending-upgrade by an interrupted run; rolling back to revision 1" in bad.stderr
    assert bad.stderr.strip().endswith("release hard is at revision 3, deployed")
    with cluster.controller(namespace):
        again, _ = deploy(scripts, "update", "hard", namespace, "--tag", "v2")
    assert again.returncode == 0, again.stderr
    assert history(octopod_env, "hard", namespace)[-1] == (4, "deployed")


def test_without_helm_wait_nothing_is_followed(cluster, scripts, namespace):
    cluster.reset_requests()
    with cluster.kubelet(namespace, "nowait-d0", PULL):
        done, _ = deploy(scripts, "create", "nowait", namespace, "--tag", "nope", env={"HELM_WAIT": "false"})
    assert done.returncode == 0, done.stderr
    assert "not ready" not in done.stderr and "failing fast" not in done.stderr
    ours = [r[1].split("?")[0] for r in cluster.requests(agents=True) if r[3] == "octopod-control" and namespace in r[1]]
    # create's own look for leftovers of a first install lists the Pods once; nothing polls them.
    assert ours.count(f"/api/v1/namespaces/{namespace}/pods") <= 1, ours
    assert not [path for path in ours if path.endswith(("/events", "/log"))], ours


@without_helm
def test_a_malformed_follow_setting_is_exit_78_before_anything_runs(scripts, namespace):
    done = scripts("create", *args("bad", namespace, "--tag", "v1"), env={"FAIL_FAST_RESTARTS": "many"})
    assert (done.returncode, done.stdout) == (78, "")
    assert done.stderr == "error: FAIL_FAST_RESTARTS='many': expected a whole number from 0 to 1000\n"


# -- each fail-fast rule, and each state that is not final (helm 4: the rules are ours) ----------
@contextlib.contextmanager
def pods_in(cluster, namespace, name, container=None, pod_status=None):
    with cluster.kubelet(namespace, f"{name}-d0", container, pod_status=pod_status):
        yield


def status_of(cluster, namespace, name, path, status):
    return driving(cluster, f"{path.format(ns=namespace, name=name)}", status)


DEPLOYMENT = "/apis/apps/v1/namespaces/{ns}/deployments/{name}-d0"
JOB = "/apis/batch/v1/namespaces/{ns}/jobs/{name}-migrate"
WAITING = lambda reason, message="": {"state": {"waiting": {"reason": reason, **({"message": message} if message else {})}}}  # noqa: E731

FAIL_FAST = [
    ("ErrImagePull", lambda c, ns, n: pods_in(c, ns, n, WAITING("ErrImagePull", "manifest unknown")), {},
     "container app: ErrImagePull (image registry.example.com/example/app:v1), for 2s"),
    ("InvalidImageName", lambda c, ns, n: pods_in(c, ns, n, WAITING("InvalidImageName", 'invalid image name "x:"')),
     {}, "container app: InvalidImageName (image registry.example.com/example/app:v1), for 2s"),
    ("CreateContainerConfigError", lambda c, ns, n: pods_in(
        c, ns, n, WAITING("CreateContainerConfigError", 'secret "db" not found')), {},
     'container app: CreateContainerConfigError: secret "db" not found, for 2s'),
    ("CreateContainerError", lambda c, ns, n: pods_in(
        c, ns, n, WAITING("CreateContainerError", "failed to reserve container name")), {},
     "container app: CreateContainerError: failed to reserve container name, for 2s"),
    ("CrashLoopBackOff at the threshold", lambda c, ns, n: pods_in(c, ns, n, dict(CRASH, restartCount=2)),
     {"FAIL_FAST_RESTARTS": "2"}, "container app: CrashLoopBackOff (2 restarts, last exit code 1)"),
    ("ReplicaFailure", lambda c, ns, n: status_of(c, ns, n, DEPLOYMENT, {"conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "message": 'pods "x" is forbidden: exceeded quota: q, requested: cpu=1, used: cpu=2, limited: cpu=2'}]}),
     {}, "deployment/{name}-d0: replica failure (FailedCreate: pods \"x\" is forbidden: exceeded quota: q"),
    ("ProgressDeadlineExceeded", lambda c, ns, n: status_of(c, ns, n, DEPLOYMENT, {"conditions": [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": 'ReplicaSet "x" has timed out progressing.'}]}),
     {}, "deployment/{name}-d0: progress deadline exceeded (ProgressDeadlineExceeded: ReplicaSet"),
    ("Job Failed", lambda c, ns, n: status_of(c, ns, n, JOB, {"failed": 2, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}]}),
     {}, "job/{name}-migrate: job failed: BackoffLimitExceeded: Job has reached the specified backoff limit"),
]


@pytest.mark.parametrize("helm_bin", ["helm4"], indirect=True)
@pytest.mark.parametrize("case, play, env, said", FAIL_FAST, ids=[c[0] for c in FAIL_FAST])
def test_each_fail_fast_rule(cluster, scripts, octopod_env, namespace, case, play, env, said):
    name = "ff"
    with play(cluster, namespace, name):
        done, took = deploy(scripts, "create", name, namespace, "--tag", "v1", "--deployment-override", "job=true",
                            env=env)
    assert done.returncode == 1, done.stderr
    said = said.format(name=name)
    if said.endswith(", for 2s"):  # about 2 s: the grace, then the next look
        assert took >= 2, "the grace is waited for"
        said = said[:-len("2s")]
    line, = [x for x in done.stderr.splitlines() if x.startswith("[octopod] failing fast: ")]
    assert said in line and line.endswith(": this will not fix itself (FAIL_FAST); stopping helm"), line
    if said.startswith("container"):  # a pod's state: named with its workload and pod
        assert line.startswith(f"[octopod] failing fast: deployment/{name}-d0: pod {name}-d0-"), line
    assert took < 25
    assert "[octopod] diagnosis of ff (revision 1)" in done.stderr
    assert history(octopod_env, name, namespace) == [(1, "failed")]


UNSCHEDULABLE = {"phase": "Pending", "conditions": [
    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
     "message": "0/3 nodes are available: 3 Insufficient cpu."}]}
NOT_FINAL = [
    ("Unschedulable", None, UNSCHEDULABLE, {}, "unschedulable: 0/3 nodes are available: 3 Insufficient cpu."),
    ("ContainerCreating", WAITING("ContainerCreating"), None, {}, "container app: waiting: ContainerCreating"),
    ("CrashLoopBackOff under the threshold", dict(CRASH, restartCount=2), None, {"FAIL_FAST_RESTARTS": "3"},
     "container app: waiting: CrashLoopBackOff"),
    ("ImagePullBackOff with FAIL_FAST=false", PULL, None, {"FAIL_FAST": "false"},
     "container app: waiting: ImagePullBackOff"),
]


@pytest.mark.parametrize("helm_bin", ["helm4"], indirect=True)
@pytest.mark.parametrize("case, container, pod_status, env, said", NOT_FINAL, ids=[c[0] for c in NOT_FINAL])
def test_what_is_not_final_waits_for_the_timeout_then_is_diagnosed(cluster, scripts, octopod_env, namespace,
                                                                   case, container, pod_status, env, said):
    with pods_in(cluster, namespace, "nf", container, pod_status):
        done, took = deploy(scripts, "create", "nf", namespace, "--tag", "v1",
                            env={"HELM_TIMEOUT": "6", "FAIL_FAST_GRACE": "1", "PROGRESS_INTERVAL": "2", **env})
    err = done.stderr
    assert done.returncode == 1, err
    assert "failing fast" not in err
    assert took >= 6, "only HELM_TIMEOUT ends the wait"
    assert re.search(r"\[octopod\] still waiting after \ds: deployment/nf-d0 0/1 available, 1 updated \(", err), err
    assert "[octopod] diagnosis of nf (revision 1): 1 of 1 workloads not ready" in err
    assert f"    {said}" in err
    assert "error: helm upgrade --install nf: failed with exit code 1 (helm's output and the diagnosis are " \
           "above); release nf is at revision 1, failed" in err
    progress = [line for line in err.splitlines() if line.startswith("[octopod] ") and "nf-d0" in line]
    assert len(progress) <= 6 / 2 + BURST + 2, progress  # the summaries, a change or two, the failing verdict


@pytest.mark.parametrize("helm_bin", ["helm4"], indirect=True)
def test_api_requests_while_waiting(cluster, scripts, namespace):
    """At most one request a second per kind: a Deployment's wait polls its kind and the Pods
    once a second, its ReplicaSets once (the current one found), the records until helm wrote one."""
    cluster.reset_requests()
    with pods_in(cluster, namespace, "rate", PULL):
        done, took = deploy(scripts, "create", "rate", namespace, "--tag", "v1",
                            env={"HELM_TIMEOUT": "8", "FAIL_FAST": "false", "LOG_TAIL_LINES": "0"})
    assert done.returncode == 1
    ours = [r[1].split("?")[0] for r in cluster.requests(agents=True) if r[3] == "octopod-control" and namespace in r[1]]
    per_kind = {kind: sum(path.endswith(f"/{kind}") for path in ours)
                for kind in ("deployments", "pods", "replicasets", "secrets", "events")}
    assert per_kind["deployments"] <= took + 4 and per_kind["pods"] <= took + 2, per_kind
    assert per_kind["replicasets"] <= 3 and per_kind["secrets"] <= 6 and per_kind["events"] <= 3, per_kind
    assert len(ours) <= 2 * took + 30, (len(ours), took, per_kind)  # create's own reads: about 20


# -- unit: progress and its bound ------------------------------------------------------------
def seen(reason: str = "", ready: bool = False, counts: str = "0/1 available, 1 updated", name: str = "web") -> Seen:
    verdict = Verdict("Deployment", name, "ready" if ready else "failed", counts, [reason] if reason else [])
    s = Seen(BY_NAME["Deployment"], {"metadata": {"name": name}}, verdict)
    s.reasons = [reason] if reason else []
    return s


def test_progress_says_each_change_and_what_still_waits_every_interval():
    progress = Progress(10, start=0)
    assert progress.observe(0, [seen("container app: ContainerCreating")]) == [
        "deployment/web: not ready, 0/1 available, 1 updated: container app: ContainerCreating"]
    assert progress.observe(1, [seen("container app: ContainerCreating")]) == []
    assert progress.observe(10, [seen("container app: ContainerCreating")]) == [
        "still waiting after 10s: deployment/web 0/1 available, 1 updated (container app: ContainerCreating)"]
    assert progress.observe(11, [seen(ready=True, counts="1/1 available, 1 updated")]) == [
        "deployment/web: ready, 1/1 available, 1 updated"]
    assert progress.observe(20, [seen(ready=True, counts="1/1 available, 1 updated")]) == []  # no summary
    # Ready at the first look (an update's old revision): nothing to announce.
    assert Progress(10, start=0).observe(0, [seen(ready=True)]) == []


def test_progress_stays_tens_of_lines_over_five_minutes_of_flapping():
    """A pod flapping every second between two reasons, its counts changing too: a five-minute
    wait prints at most BURST change lines an interval and one summary an interval."""
    progress, lines = Progress(10, start=0), []
    for second in range(300):
        reason = ("container app: ErrImagePull (image x)", "container app: ImagePullBackOff (image x)")[second % 2]
        lines += progress.observe(second, [seen(reason, counts=f"0/1 available, {second % 3} updated")])
    summaries = [line for line in lines if line.startswith("still waiting")]
    assert len(summaries) == 29  # at 10, 20, ... 290 s
    assert len(lines) - len(summaries) <= BURST * 30
    assert len(lines) <= 90
    quiet = Progress(10, start=0)
    assert sum(len(quiet.observe(s, [seen("pending")])) for s in range(300)) == 1 + 29


def test_restart_counts_and_images_are_no_change_of_state():
    progress = Progress(10, start=0)
    progress.observe(0, [seen("container app: CrashLoopBackOff (3 restarts, last exit code 1)")])
    assert progress.observe(1, [seen("container app: CrashLoopBackOff (4 restarts, last exit code 1)")]) == []


# -- unit: fail fast -------------------------------------------------------------------------
def waiting_pod(reason: str, uid: str = "p1", restarts: int = 0, message: str = "") -> dict:
    return {"metadata": {"name": f"web-{uid}", "uid": uid}, "spec": {"containers": [{"name": "app", "image": "img:1"}]},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "app", "restartCount": restarts,
                "state": {"waiting": {"reason": reason, **({"message": message} if message else {})}}}]}}


def looking(*pods: dict) -> list[Seen]:
    s = seen("x")
    s.pods = list(pods)
    return [s]


def test_a_stuck_container_fails_after_the_grace_and_only_while_it_stays_stuck():
    rule = FailFast(grace=30, restarts=3)
    for second in range(30):
        reason = ("ErrImagePull", "ImagePullBackOff")[second % 2]  # the kubelet alternates: one state
        assert rule.observe(second, looking(waiting_pod(reason))) is None
    assert rule.observe(30, looking(waiting_pod("ImagePullBackOff"))) == \
        "deployment/web: pod web-p1: container app: ImagePullBackOff (image img:1), for 30s"
    again = FailFast(grace=30, restarts=3)
    again.observe(0, looking(waiting_pod("ImagePullBackOff")))
    again.observe(20, looking(waiting_pod("ContainerCreating")))  # it pulled after all
    assert again.observe(35, looking(waiting_pod("ImagePullBackOff"))) is None  # a new 30 s
    assert again.observe(65, looking(waiting_pod("ImagePullBackOff"))) is not None
    replaced = FailFast(grace=30, restarts=3)
    replaced.observe(0, looking(waiting_pod("CreateContainerConfigError", "a")))
    assert replaced.observe(40, looking(waiting_pod("CreateContainerConfigError", "b"))) is None  # a new pod


def test_a_crash_loop_fails_at_the_restart_threshold_at_once():
    rule = FailFast(grace=30, restarts=3)
    assert rule.observe(0, looking(waiting_pod("CrashLoopBackOff", restarts=2))) is None
    assert rule.observe(1, looking(waiting_pod("CrashLoopBackOff", restarts=3))) == \
        "deployment/web: pod web-p1: container app: CrashLoopBackOff (3 restarts, last no exit code)"


@pytest.mark.parametrize("pod", [
    waiting_pod("ContainerCreating"), waiting_pod("PodInitializing"),
    {"metadata": {"uid": "u"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}},
    {"metadata": {"uid": "u"}, "status": {"phase": "Running", "containerStatuses": [
        {"name": "app", "ready": False, "restartCount": 9, "state": {"running": {}}}]}},
], ids=["ContainerCreating", "PodInitializing", "Unschedulable", "running unready"])
def test_states_that_may_fix_themselves_never_fail_fast(pod):
    rule = FailFast(grace=1, restarts=0)
    assert all(rule.observe(second, looking(pod)) is None for second in range(100))
    assert stuck(pod, 0) == []


def test_the_kinds_say_what_has_failed_for_good():
    failed_job = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}}
    assert job.failed(failed_job) == "job failed: DeadlineExceeded"
    assert job.failed({"status": {"active": 1}}) is None
    quota = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "exceeded quota"}]}}
    assert deployment.failed(quota) == "replica failure (FailedCreate: exceeded quota)"
    stale = dict(quota, metadata={"generation": 3})  # the condition is of the spec before
    assert deployment.failed(stale) is None
    deadline = {"status": {"conditions": [{"type": "Progressing", "status": "False",
                                           "reason": "ProgressDeadlineExceeded"}]}}
    assert deployment.failed(deadline) == "progress deadline exceeded (ProgressDeadlineExceeded)"
    assert statefulset.KIND.failure({}) is None


# -- unit: which Pods are a workload's ---------------------------------------------------------
def _ref(kind: str, uid: str) -> list[dict]:
    return [{"apiVersion": "apps/v1", "kind": kind, "name": uid, "uid": uid, "controller": True}]


def test_a_deployments_pods_are_those_of_its_current_replicaset():
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "v2"}]}}
    dep = {"metadata": {"name": "web", "uid": "d"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
                                                           "template": template}}

    def rs(uid, image, owner="d"):
        labels = {"app": "web", "pod-template-hash": uid}
        return {"metadata": {"name": f"web-{uid}", "uid": uid, "ownerReferences": _ref("Deployment", owner)},
                "spec": {"selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{"name": "app", "image": image}]}}}}

    def pod(name, labels, refs=None):
        return {"metadata": {"name": name, "labels": labels, "ownerReferences": refs or []}}

    replicasets = [rs("old", "v1"), rs("new", "v2"), rs("other", "v2", owner="another-deployment")]
    pods = [pod("of-old", {"app": "web", "pod-template-hash": "old"}, _ref("ReplicaSet", "old")),
            pod("of-new", {"app": "web", "pod-template-hash": "new"}, _ref("ReplicaSet", "new")),
            pod("orphan", {"app": "web", "pod-template-hash": "new"}),  # adopted by its selector
            pod("of-other", {"app": "web", "pod-template-hash": "new"}, _ref("ReplicaSet", "other"))]
    assert deployment.current_replicaset(dep, replicasets)["metadata"]["uid"] == "new"
    assert [p["metadata"]["name"] for p in deployment.pods(dep, pods, replicasets)] == ["of-new", "orphan"]
    assert deployment.pods(dep, pods, []) is None  # not among those read: made since, or not yet
    assert len(deployment.pods(dep, pods)) == 4  # check's view, without the ReplicaSets: the selector's
    assert [p["metadata"]["name"] for p in owned({"metadata": {"uid": "x"}, "spec": {}}, pods)] == []


def test_a_statefulsets_pods_are_its_own_of_the_update_revision():
    sts = {"metadata": {"uid": "s"}, "spec": {"selector": {"matchLabels": {"app": "db"}}},
           "status": {"updateRevision": "db-2"}}
    pods = [{"metadata": {"name": n, "labels": {"app": "db", "controller-revision-hash": r},
                          "ownerReferences": _ref("StatefulSet", o)}}
            for n, r, o in (("db-0", "db-1", "s"), ("db-1", "db-2", "s"), ("x-0", "db-2", "other"))]
    assert [p["metadata"]["name"] for p in statefulset.pods(sts, pods)] == ["db-1"]


# -- unit: what the diagnosis shows ------------------------------------------------------------
def test_events_are_deduplicated_counted_and_the_latest_few():
    def event(reason, message, at, count=1):
        return {"reason": reason, "message": message, "lastTimestamp": f"2026-01-01T00:00:{at:02d}Z", "count": count}

    events = [event("Failed", "pull failed", 1, 2), event("Failed", "pull failed", 5, 3),
              event("BackOff", "back-off", 4), event("Old", "old", 0), event("Older", "older", 0),
              event("Long", "x" * 1000, 3)]
    lines = latest_events(events)
    assert lines[:2] == ["event Failed (x5): pull failed", "event BackOff: back-off"]
    assert len(lines) == 3 and len(lines[2]) < 330


class _LogClient:
    def __init__(self, text: str) -> None:
        self.text, self.asked = text, None

    def request(self, method, path, params=None, deadline=None, *, text=False):
        self.asked = (path, params)
        return self.text.encode()[:int(params["limitBytes"])].decode("utf-8", "replace")


def test_a_log_tail_is_bounded_cleaned_and_redacted():
    secret = "s3cret-value"
    client = _LogClient("".join(f"\x1b[31mline {i}\x1b[0m {'x' * 500 if i == 3 else secret}\r\n" for i in range(1, 5)))
    tail = log_tail(client, "ns", "pod", "app", True, 3, Redactor([secret]))
    assert client.asked == ("/api/v1/namespaces/ns/pods/pod/log",
                            {"container": "app", "tailLines": "3", "limitBytes": "16384", "previous": "true"})
    assert tail[0] == "line 2 ***" and tail[2] == "line 4 ***"
    assert tail[1].startswith("line 3 xxx") and len(tail[1]) == 300
    # An answer cut at limitBytes: its partial last line, which may hold a value's start, goes.
    cut = _LogClient("ok\n" * 5000 + f"token {secret} and more\n" * 2000)
    lines = log_tail(cut, "ns", "pod", "app", False, 20, Redactor([secret]))
    assert all(secret[:4] not in line for line in lines) and len(lines) == 20


# -- the emulator serves pod logs and Events as the API server does ------------------------------
def test_the_emulator_serves_pod_logs_and_events_as_the_api_server_does(cluster, namespace):
    cluster.requires_emulator("pod logs")
    base = f"/api/v1/namespaces/{namespace}"
    cluster.api("POST", f"{base}/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                         "spec": {"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}})
    cluster.api("PATCH", f"{base}/pods/p/status", {"status": {"containerStatuses": [
        {"name": "a", "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1}}},
        {"name": "b", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}, MERGE)
    cluster.set_log(namespace, "p", "a", "one\ntwo\nthree\n")
    cluster.set_log(namespace, "p", "a", "crashed\n", previous=True)

    def log(query: str) -> str:
        import urllib.request
        with urllib.request.urlopen(f"{cluster.url}{base}/pods/p/log?{query}", timeout=10) as response:
            return response.read().decode()

    def refused(query: str) -> str:
        with pytest.raises(urllib.error.HTTPError) as caught:
            log(query)
        assert caught.value.code == 400
        return json.loads(caught.value.read())["message"]

    assert log("container=a") == "one\ntwo\nthree\n"
    assert log("container=a&tailLines=2") == "two\nthree\n"
    assert log("container=a&tailLines=2&limitBytes=5") == "two\nt"
    assert log("container=a&previous=true") == "crashed\n"
    assert refused("") == "a container name must be specified for pod p, choose one of: [a b]"
    assert refused("container=c") == "container c is not valid for pod p"
    assert refused("container=b") == 'container "b" in pod "p" is waiting to start: trying and failing to pull image'
    assert refused("container=b&previous=true") == 'previous terminated container "b" in pod "p" not found'

    pod = cluster.api("GET", f"{base}/pods/p")
    cluster.event(pod, "Failed", "pull failed")
    cluster.event(pod, "Pulled", "pulled", type="Normal")
    cluster.event(dict(pod, metadata=dict(pod["metadata"], uid="another")), "Failed", "an older pod of the name")
    selector = f"involvedObject.kind=Pod,involvedObject.name=p,involvedObject.uid={pod['metadata']['uid']},type=Warning"
    found = cluster.api("GET", f"{base}/events?fieldSelector={selector}")["items"]
    assert [e["message"] for e in found] == ["pull failed"]
    assert len(cluster.api("GET", f"{base}/events?fieldSelector=source=kubelet")["items"]) == 3
    with pytest.raises(urllib.error.HTTPError) as caught:
        cluster.api("GET", f"{base}/events?fieldSelector=spec.nope=x")
    assert caught.value.code == 400 and json.loads(caught.value.read())["message"] == "field label not supported: spec.nope"


def test_helm_is_stopped_as_on_a_timeout():
    """process.run with a stop event: the process group ends (a child too), the Result says so."""
    from octopod_control.process import run

    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    result = run(["sh", "-c", "sleep 60 & sleep 60"], timeout=30, stop=stop)
    assert result.stopped and not result.ok and time.monotonic() - started < 10
    quick = run(["true"], timeout=30, stop=threading.Event())
    assert quick.ok and not quick.stopped


def test_the_previous_revisions_failures_never_stop_an_update():
    """Until a workload is the new revision's (made by it, or changed by it and observed by its
    controller), its crash-looping Pods and its conditions are the old revision's: an update
    that fixes them must not be stopped by them (the review of issues 13-15)."""
    from types import SimpleNamespace

    from octopod_control.rollout import Follow

    rule = FailFast(grace=30, restarts=3)
    crashing = looking(waiting_pod("CrashLoopBackOff", restarts=9))
    assert rule.observe(0, crashing, lambda s: False) is None
    assert rule.observe(1, crashing, lambda s: True) is not None

    def fresh(before, generation, observed, uid="u1"):
        s = seen("x")
        s.obj = {"metadata": {"name": "web", "uid": uid, "generation": generation},
                 "status": {"observedGeneration": observed}}
        return Follow.fresh(SimpleNamespace(before=before), s)

    old = {("Deployment", "web"): ("u1", 3)}
    assert fresh({}, 1, 0)  # made by this revision
    assert fresh(old, 1, 0, uid="u2")  # deleted and made again
    assert not fresh(old, 3, 3)  # unchanged: the old revision's state
    assert not fresh(old, 4, 3)  # changed, not yet observed: the old ReplicaSet is still current
    assert fresh(old, 4, 4)
