"""Reliability of the operations other than create/info (issue 8): faults, load, secrets.

test_reliability.py covers create and info; this file covers update, check, archive,
archive_check, cleanup, and the secrets tag_check, init and remote cleanup handle. Faults are
injected into the emulator (`cluster.fault`: 500s or a hang on a path prefix, optionally one
method), so a run can fail *before* its first API call or *in the middle*, after it has read or
changed something. Each failure must exit non-zero with one `error:` line naming what failed and
carrying the fault's own message (the emulator's `kube_emu: injected fault`, or the timeout of
the request or command that hung), within a bound set by KUBE_TIMEOUT/CLEANUP_TIMEOUT, and lose
nothing that existed before. The table of operation x fault x before/middle, with the test of
each cell, is in docs/reliability.md.

Every test that runs helm runs with helm 3 and helm 4 (conftest's `helm_bin`); one whose scripts
never run helm runs once (`without_helm`).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_script, tool, without_helm
from tests.support.processes import kill_helm_when
from tests.support.registry import basic_auth, htpasswd_file, push_images, start_registry
from tests.test_create import helm_values, kubectl_json, octopod_args
from tests.test_init import PASSWORD as REPO_PASSWORD
from tests.test_init import USER as REPO_USER
from tests.test_init import chart_repo, clean_env  # noqa: F401  (chart_repo: a fixture)
from tests.test_lifecycle import CHART as LIFECYCLE_CHART
from tests.test_lifecycle import NAME as LIFE
from tests.test_lifecycle import get, kept_pvc, replicas, stop_pods
from tests.test_reliability import INJECTED, CmdlineSampler, files_containing, one_clear_line, release_statuses
from tests.test_remote_cleanup import sshd  # noqa: F401  (module-scoped fixture: a real sshd)

pytestmark = pytest.mark.reliability

ARCHIVED = "octopod.io/archived-replicas"
GONE = "error: Kubernetes API http://127.0.0.1:9 unreachable: Connection refused"


def bounded(seconds: float):
    """A stopwatch: `with bounded(10): ...` fails when the block took longer."""
    class Watch:
        def __enter__(self):
            self.started = time.monotonic()
            return self

        def __exit__(self, *exc):
            self.elapsed = time.monotonic() - self.started
            if exc[0] is None:
                assert self.elapsed < seconds, f"took {self.elapsed:.1f}s, bound {seconds}s"
    return Watch()


def create(scripts, name: str, *extra: str, namespace: str, env: dict | None = None, tag: str = "v1"):
    done = scripts("create", *octopod_args(name, namespace, "--tag", tag, *extra),
                   env={"HELM_WAIT": "false", **(env or {})})
    assert done.returncode == 0, done.stderr
    return done


def failed_cleanly(done: subprocess.CompletedProcess, *phrases: str) -> str:
    """Non-zero, nothing on stdout, the last stderr line the error, no traceback; returns that line."""
    assert done.returncode != 0, done.stderr
    assert done.stdout == ""
    line = one_clear_line(done.stderr)
    for phrase in phrases:
        assert phrase in line, done.stderr
    return line


def api_fault(cluster, fault: str, prefix: str, env: dict, dead_kubeconfig: str, method: str | None = None):
    """fault "gone": the kubeconfig points at a closed port; "500"/"hang": injected on prefix."""
    if fault == "gone":
        env["KUBECONFIG"] = dead_kubeconfig
        return contextlib.nullcontext()
    return cluster.fault(fault, prefix=prefix, method=method)


def read_failed(line: str, fault: str, request: str) -> None:
    """The line carries the fault's own message for a read by our API client (KUBE_TIMEOUT=1)."""
    if fault == "gone":
        assert line.endswith(GONE.removeprefix("error: ")), line
    elif fault == "500":
        assert line.endswith(f"Kubernetes API: {request}: 500 {INJECTED}"), line
    else:
        assert "Kubernetes API http://127.0.0.1:" in line and line.endswith(f": {request} timed out after 1s"), line


def only_revision_1(cluster, octopod_env, namespace: str, release: str) -> None:
    """Revision 1 is the one deployed, with its values, and the live Deployment runs its tag."""
    history = json.loads(subprocess.run(
        [octopod_env["HELM_BIN"], "history", release, "-n", namespace, "-o", "json"], env=octopod_env,
        capture_output=True, text=True, timeout=60, check=True).stdout)
    assert [r["revision"] for r in history if r["status"] == "deployed"] == [1], history
    values = subprocess.run([octopod_env["HELM_BIN"], "get", "values", release, "-n", namespace,
                             "--revision", "1", "-o", "json"], env=octopod_env, capture_output=True,
                            text=True, timeout=60, check=True)
    assert json.loads(values.stdout)["app"] == {"env": {"WHO": "first"}, "tag": "v1"}
    live = kubectl_json(octopod_env, "get", "deployment", f"{release}-app", "-n", namespace)
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith(":v1")
    assert {"name": "WHO", "value": "first"} in container["env"]


# ================================================================ faults: update
@pytest.mark.parametrize("fault", ["gone", "500", "hang"])
def test_update_with_the_api_failing_before_helm_runs_changes_nothing(cluster, scripts, octopod_env, namespace,
                                                                     dead_kubeconfig, fault):
    """The first request, the ownership read of the release's records, fails: helm never runs."""
    create(scripts, "upd", "--app-env-override", "WHO=first", namespace=namespace)
    records = f"/api/v1/namespaces/{namespace}/secrets"
    env = {"HELM_WAIT": "false", "KUBE_TIMEOUT": "1"}
    with api_fault(cluster, fault, records, env, dead_kubeconfig), bounded(30):
        done = scripts("update", *octopod_args("upd", namespace, "--tag", "v2", "--app-env-override",
                                               "WHO=second"), env=env)
    read_failed(failed_cleanly(done), fault, f"GET {records}")
    only_revision_1(cluster, octopod_env, namespace, "upd")
    assert release_statuses(cluster, namespace, "upd") == ["deployed"]


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_update_failing_midway_keeps_the_previous_revision_and_a_retry_lands(cluster, scripts, octopod_env,
                                                                            namespace, mode):
    """helm has written revision 2's record, then its patch of the Deployment fails (500) or never
    answers (hang: bounded by the helm process's bound, HELM_TIMEOUT=1 + 5 s, since helm puts no
    timeout on its API requests). Revision 1 stays deployed, values and all."""
    create(scripts, "upd", "--app-env-override", "WHO=first", namespace=namespace)
    cluster.ready(namespace)
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    env = {"HELM_WAIT": "false", "HELM_TIMEOUT": "60" if mode == "500" else "1"}
    with cluster.fault(mode, prefix=deployments, method="PATCH"), bounded(40):
        done = scripts("update", *octopod_args("upd", namespace, "--tag", "v2",
                                               "--app-env-override", "WHO=second"), env=env)
    if mode == "500":
        failed_cleanly(done, "helm upgrade --install upd: failed with exit code 1")
        assert INJECTED in done.stderr  # helm's error line, above ours, quotes the API
    else:
        helm = os.path.basename(octopod_env["HELM_BIN"])
        assert failed_cleanly(done) == f"error: {helm} upgrade: timed out after 6s"
    only_revision_1(cluster, octopod_env, namespace, "upd")
    statuses = release_statuses(cluster, namespace, "upd")
    # helm marks the revision failed (on SIGTERM too); a helm killed outright leaves it pending.
    assert statuses[0] == "deployed" and statuses[1:] in (["failed"], ["pending-upgrade"]), statuses
    # What Octopod's status loop asks next must not call the half-done v2 running.
    # (A defect fixed here: check read the tag of the failed revision 2 and answered 0.)
    status = scripts("check", *octopod_args("upd", namespace, "--tag", "v2"))
    assert status.returncode == 3, status.stderr
    assert status.stderr == ("tag mismatch: release upd runs tag v1 (app.tag), requested v2; "
                             f"the newest revision, 2, is {statuses[1]}\n")
    assert scripts("check", *octopod_args("upd", namespace, "--tag", "v1")).returncode == 0

    done = scripts("update", *octopod_args("upd", namespace, "--tag", "v2", "--app-env-override", "WHO=second"),
                   env={"HELM_WAIT": "false"})
    assert done.returncode == 0, done.stderr
    assert helm_values(octopod_env, "upd", namespace)["app"]["env"] == {"WHO": "second"}
    cluster.ready(namespace)
    assert scripts("check", *octopod_args("upd", namespace, "--tag", "v2")).returncode == 0


def test_helm_killed_mid_upgrade_check_sees_the_old_tag_and_create_recovers(cluster, scripts, octopod_env,
                                                                            namespace):
    """test_create covers a kill mid-install; this is mid-upgrade (`pending-upgrade` over revision 1)."""
    create(scripts, "kill", "--app-env-override", "WHO=first", namespace=namespace)
    helm_bin = octopod_env["HELM_BIN"]
    kill_helm_when("pending-upgrade", [helm_bin, "upgrade", "kill", str(ROOT / "charts" / "example"),
                                       "-n", namespace, "--reuse-values", "--set", "app.tag=v2", "--wait",
                                       "--timeout", "30s"], octopod_env, "kill", namespace)
    status = scripts("check", *octopod_args("kill", namespace, "--tag", "v2"))
    assert status.returncode == 3, status.stderr
    assert "runs tag v1" in status.stderr and "the newest revision, 2, is pending-upgrade" in status.stderr

    with cluster.controller(namespace):
        done = scripts("create", *octopod_args("kill", namespace, "--tag", "v2", "--app-env-override", "WHO=second"))
    assert done.returncode == 0, done.stderr
    assert "interrupted run" in done.stderr and "rolling back to revision 1" in done.stderr
    assert helm_values(octopod_env, "kill", namespace)["app"] == {"env": {"WHO": "second"}, "tag": "v2"}
    assert scripts("check", *octopod_args("kill", namespace, "--tag", "v2")).returncode == 0


# ================================================================ faults: check
WHERE = {"before": "/api/v1/namespaces/{ns}/secrets",  # check's first read: helm's records
         "middle": "/apis/apps/v1/namespaces/{ns}/deployments"}  # then the workloads


@pytest.mark.parametrize("mode", ["500", "hang"])
@pytest.mark.parametrize("where", ["before", "middle"])
def test_check_with_the_api_failing(cluster, scripts, namespace, where, mode):
    """A failure naming the call and the fault; never "not found" (an API failure is not a missing
    release); and the next check, the fault gone, answers 0."""
    create(scripts, "chk", namespace=namespace)
    cluster.ready(namespace)
    prefix = WHERE[where].format(ns=namespace)
    with cluster.fault(mode, prefix=prefix), bounded(20):
        done = scripts("check", *octopod_args("chk", namespace, "--tag", "v1"), env={"KUBE_TIMEOUT": "1"})
    assert done.returncode == 1
    line = failed_cleanly(done)
    read_failed(line, mode, f"GET {prefix}")
    assert "not found" not in line
    assert scripts("check", *octopod_args("chk", namespace, "--tag", "v1")).returncode == 0


# ================================================================ faults: archive
@without_helm  # nothing to archive: no helm runs
def test_archive_with_the_api_gone_fails_clearly(scripts, namespace, dead_kubeconfig):
    with bounded(30):
        done = scripts("archive", *octopod_args("gone", namespace), env={"KUBECONFIG": dead_kubeconfig})
    assert failed_cleanly(done) == GONE


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_archive_with_the_api_failing_before_its_first_read_changes_nothing(cluster, scripts, octopod_env,
                                                                           namespace, mode):
    create(scripts, "arc", namespace=namespace)
    records = f"/api/v1/namespaces/{namespace}/secrets"  # the first read: the release's records
    with cluster.fault(mode, prefix=records), bounded(20):
        done = scripts("archive", *octopod_args("arc", namespace), env={"KUBE_TIMEOUT": "1"})
    read_failed(failed_cleanly(done), mode, f"GET {records}")
    live = get(octopod_env, namespace, "deployment/arc-app")
    assert live["spec"]["replicas"] == 1 and ARCHIVED not in (live["metadata"].get("annotations") or {})


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_archive_failing_midway_then_a_retry_and_restore_bring_every_count_back(
        cluster, scripts, octopod_env, namespace, mode):
    """The Deployments are scaled, then the StatefulSet's patch fails: nothing recorded is lost."""
    env = {"CHART": LIFECYCLE_CHART, "KUBE_TIMEOUT": "2"}
    args = octopod_args(LIFE, namespace)
    with cluster.controller(namespace):
        assert scripts("create", *args, "--tag", "v1", env=env).returncode == 0
    for what, count in (("deployment/life-worker", 3), ("statefulset/life-db", 2)):
        subprocess.run([tool("kubectl"), "scale", what, f"--replicas={count}", "-n", namespace],
                       env=octopod_env, check=True, capture_output=True, timeout=60)
    before = replicas(octopod_env, namespace)
    assert before == {"web": 2, "worker": 3, "db": 2}

    sts = f"/apis/apps/v1/namespaces/{namespace}/statefulsets"
    with cluster.fault(mode, prefix=sts, method="PATCH"), bounded(40):
        done = scripts("archive", *args, env=env)
    line = failed_cleanly(done, "kubectl patch statefulset")
    # kubectl's own words: the API's 500, or its --request-timeout (KUBE_TIMEOUT=2) running out,
    # which Go words one of two ways depending on where the deadline meets the request.
    if mode == "500":
        assert f"Error from server (InternalError): {INJECTED}" in line, line
    else:
        assert ("Client.Timeout exceeded while awaiting headers" in line
                or "context deadline exceeded" in line), line
    halfway = replicas(octopod_env, namespace)
    assert halfway == {"web": 0, "worker": 0, "db": 2}
    assert get(octopod_env, namespace, "deployment/life-worker")["metadata"]["annotations"][ARCHIVED] == "3"
    assert scripts("archive_check", *args, env=env).returncode == 1  # not archived: db still asks for 2

    done = scripts("archive", *args, env=env)  # the retry finishes, and keeps what the first one recorded
    assert done.returncode == 0, done.stderr
    assert replicas(octopod_env, namespace) == {"web": 0, "worker": 0, "db": 0}
    recorded = {w: get(octopod_env, namespace, w)["metadata"]["annotations"][ARCHIVED]
                for w in ("deployment/life-web", "deployment/life-worker", "statefulset/life-db")}
    assert recorded == {"deployment/life-web": "2", "deployment/life-worker": "3", "statefulset/life-db": "2"}
    stop_pods(cluster, namespace)
    assert scripts("archive_check", *args, env=env).returncode == 0

    with cluster.controller(namespace):  # restore
        done = scripts("create", *args, "--tag", "v1", env=env)
    assert done.returncode == 0, done.stderr
    assert replicas(octopod_env, namespace) == before


def test_archive_without_kubectl_names_it_and_changes_nothing(cluster, scripts, octopod_env, namespace):
    create(scripts, "nokc", namespace=namespace)
    done = scripts("archive", *octopod_args("nokc", namespace), env={"KUBECTL_BIN": "/nonexistent/kubectl"})
    failed_cleanly(done, "/nonexistent/kubectl not found")
    assert get(octopod_env, namespace, "deployment/nokc-app")["spec"]["replicas"] == 1


# ================================================================ faults: archive_check
@without_helm  # a deployment never made: no helm runs
@pytest.mark.parametrize("fault", ["gone", "500 before", "hang before", "500 middle", "hang middle"])
def test_archive_check_never_says_archived_when_it_cannot_see(cluster, scripts, namespace,
                                                             dead_kubeconfig, fault):
    """A deployment that does not exist is archived (exit 0); an API that fails is not that."""
    args = octopod_args("never-made", namespace)
    assert scripts("archive_check", *args).returncode == 0
    mode, _, when = fault.partition(" ")
    prefix = (f"/apis/apps/v1/namespaces/{namespace}/deployments" if when == "before"  # its first read
              else f"/api/v1/namespaces/{namespace}/pods")  # after the workloads and helm's records
    env = {"KUBE_TIMEOUT": "1"}
    with api_fault(cluster, mode, prefix, env, dead_kubeconfig), bounded(20):
        done = scripts("archive_check", *args, env=env)
    assert done.returncode == 1
    read_failed(failed_cleanly(done), mode, f"GET {prefix}")


# ================================================================ faults: cleanup
@pytest.mark.parametrize("fault", ["gone", "500", "hang"])
def test_cleanup_with_the_api_failing_before_anything(cluster, scripts, octopod_env, namespace,
                                                      dead_kubeconfig, fault):
    """The first read (the release's records, to know what is the staging's) fails: nothing is
    touched, nothing half-deleted, and the part skipped is named with the fault."""
    create(scripts, "cln", namespace=namespace)
    records = f"/api/v1/namespaces/{namespace}/secrets"
    env = {"KUBE_TIMEOUT": "1"}
    with api_fault(cluster, fault, records, env, dead_kubeconfig, method="GET"), bounded(30):
        done = scripts("cleanup", *octopod_args("cln", namespace), env=env)
    assert failed_cleanly(done) == "error: cleanup of cln: 1 part(s) failed (listed above)"
    failure, = [line for line in done.stderr.splitlines() if line.startswith("cleanup failed: ")]
    assert failure.startswith("cleanup failed: Kubernetes part skipped: Kubernetes API")
    read_failed(failure, fault, f"GET {records}")
    assert get(octopod_env, namespace, "deployment/cln-app")  # nothing half-deleted
    assert release_statuses(cluster, namespace, "cln") == ["deployed"]


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_cleanup_failing_midway_says_what_is_left_and_a_retry_finishes(cluster, scripts, octopod_env,
                                                                        namespace, mode):
    """helm uninstall works, deleting the kept volume fails: named, then a second run frees it."""
    create(scripts, "cln", namespace=namespace)
    cluster.api("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", kept_pvc("cln-data", "cln", namespace))
    prefix = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    # A hang: KUBE_TIMEOUT is long, so it is CLEANUP_TIMEOUT that must stop the run.
    env = {"KUBE_TIMEOUT": "30", "CLEANUP_TIMEOUT": "8"} if mode == "hang" else {}
    with cluster.fault(mode, prefix=prefix, method="DELETE"), bounded(25):
        done = scripts("cleanup", *octopod_args("cln", namespace), env=env)
    failed_cleanly(done, "cleanup of cln: 1 part(s) failed")
    failure, = [line for line in done.stderr.splitlines() if line.startswith("cleanup failed: ")]
    assert "deleting PersistentVolumeClaim cln-data: kubectl delete persistentvolumeclaim: " in failure
    # kubectl's report of the API's 500, or CLEANUP_TIMEOUT's remainder running out (not KUBE_TIMEOUT's 30 s)
    assert (f"Error from server (InternalError): {INJECTED}" if mode == "500"
            else "kubectl delete persistentvolumeclaim: timed out after ") in failure, failure
    assert cluster.api("GET", f"{prefix}/cln-data")  # still there, and said so
    assert cluster.api("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/cln-app") is None

    again = scripts("cleanup", *octopod_args("cln", namespace))
    assert again.returncode == 0, again.stderr
    assert cluster.api("GET", f"{prefix}/cln-data") is None


def test_cleanup_without_kubectl_names_it_and_still_uninstalls(cluster, scripts, namespace):
    create(scripts, "nokc", namespace=namespace)
    cluster.api("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", kept_pvc("nokc-data", "nokc", namespace))
    done = scripts("cleanup", *octopod_args("nokc", namespace), env={"KUBECTL_BIN": "/nonexistent/kubectl"})
    failed_cleanly(done, "cleanup of nokc: 1 part(s) failed")
    assert "/nonexistent/kubectl not found" in done.stderr
    assert cluster.api("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/nokc-app") is None
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/nokc-data")


def test_cleanup_without_helm_frees_the_objects_keeps_the_records_and_a_retry_finishes(
        cluster, scripts, octopod_env, namespace):
    """helm cannot start: the release's objects go by kubectl and the run fails loudly; helm's
    records stay (an uninstall that failed may have left objects elsewhere, and the records are
    how a second run finds them), and a second run with helm finishes."""
    create(scripts, "nohelm", namespace=namespace)
    done = scripts("cleanup", *octopod_args("nohelm", namespace), env={"HELM_BIN": "/nonexistent/helm"})
    failed_cleanly(done, "cleanup of nohelm: 1 part(s) failed")
    failure, = [line for line in done.stderr.splitlines() if line.startswith("cleanup failed: ")]
    assert failure.startswith("cleanup failed: helm uninstall nohelm:") and "/nonexistent/helm" in failure
    left = kubectl_json(octopod_env, "get", "all,pvc,secret,cm", "-n", namespace)["items"]
    assert [(i["kind"], i["metadata"]["name"]) for i in left
            if (i["kind"], i["metadata"]["name"]) not in CLUSTER_DEFAULTS] == [
        ("Secret", "sh.helm.release.v1.nohelm.v1")]
    again = scripts("cleanup", *octopod_args("nohelm", namespace))
    assert again.returncode == 0, again.stderr
    left = kubectl_json(octopod_env, "get", "all,pvc,secret,cm", "-n", namespace)["items"]
    assert [(i["kind"], i["metadata"]["name"]) for i in left
            if (i["kind"], i["metadata"]["name"]) not in CLUSTER_DEFAULTS] == []


# ================================================================ load
CLUSTER_DEFAULTS = {("ConfigMap", "kube-root-ca.crt")}


def test_twenty_deployments_at_once_through_check_archive_and_cleanup(cluster, octopod_env, namespace,
                                                                      tmp_path):
    """20 creates, then 20 checks, 20 archives, 20 archive_checks and 20 cleanups, each batch at once,
    sharing one TMPDIR, HOME and helm cache: every run succeeds and nothing of them is left."""
    names = [f"load-{i}" for i in range(20)]
    shared_tmp = tmp_path / "shared-tmp"
    shared_tmp.mkdir()
    env = {k: v for k, v in octopod_env.items() if k != "XDG_RUNTIME_DIR"}  # the locks go to TMPDIR too
    env.update(HELM_WAIT="false", TMPDIR=str(shared_tmp))

    def all_at_once(operation: str, *extra: str) -> None:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(names)) as pool:
            results = list(pool.map(lambda n: run_script(operation, *octopod_args(n, namespace, *extra),
                                                         env=env), names))
        failed = [(n, r.returncode, r.stderr[-400:]) for n, r in zip(names, results) if r.returncode]
        assert not failed, (operation, failed)
        assert all(r.stdout == "" for r in results), operation

    all_at_once("create", "--tag", "v1")
    cluster.ready(namespace)
    all_at_once("check", "--tag", "v1")
    all_at_once("archive")
    zero = kubectl_json(env, "get", "deployments", "-n", namespace)["items"]
    assert sorted(d["metadata"]["name"] for d in zero if d["spec"]["replicas"] == 0) == sorted(
        f"{n}-app" for n in names)
    all_at_once("archive_check")
    all_at_once("cleanup")

    left = kubectl_json(env, "get", "all,pvc,secret,cm", "-n", namespace)["items"]
    assert [(i["kind"], i["metadata"]["name"]) for i in left
            if (i["kind"], i["metadata"]["name"]) not in CLUSTER_DEFAULTS] == []
    # The shared TMPDIR holds only the per-release lock files (empty, kept by design: a flock file
    # cannot be removed safely while another run may be opening it); no temp file of any run.
    leftovers = sorted(str(p.relative_to(shared_tmp)) for p in shared_tmp.rglob("*") if p.is_file())
    locks = [p for p in leftovers if p.startswith(f"octopod-control-{os.getuid()}/locks/")
             and p.endswith(".lock") and (shared_tmp / p).stat().st_size == 0]
    assert leftovers == locks and len(locks) == len(names), leftovers


# ================================================================ secrets
def never_in_argv(sampler: CmdlineSampler, *secrets: str) -> None:
    """No process on the machine had any of the values in its argv while the runs were sampled
    (these secrets reach us through the environment, so not even our own runs may hold them)."""
    for secret in secrets:
        hits = [c[:200] for _, c in sampler.seen if secret.encode() in c]
        assert not hits, hits[:1]


def leaks_in_files(root: Path, secrets: list[str], allowed: set[Path]) -> list[str]:
    allowed_names = {str(p) for p in allowed}
    return sorted({hit for s in secrets for hit in files_containing(root, s.encode())} - allowed_names)


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory):
    """The real docker-registry with htpasswd Basic auth and a password made for this run."""
    work = tmp_path_factory.mktemp("private-registry")
    user, password = "octo", f"rp-{os.urandom(8).hex()}"
    storage = work / "storage"
    storage.mkdir()
    filler = start_registry(work / "open", storage)
    try:
        push_images(filler.url, "team/app")
    finally:
        filler.stop()
    registry = start_registry(work / "basic", storage, basic_auth(htpasswd_file(work / "htpasswd", user, password)))
    try:
        yield registry, user, password
    finally:
        registry.stop()


def test_a_registry_password_never_leaks(private_registry, tmp_path):
    import base64

    registry, user, password = private_registry
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    env = {k: v for k, v in clean_env(home, TMPDIR=str(tmpdir)).items() if not k.startswith("REGISTRY_")}
    env.update(REGISTRY_IMAGES=f"{registry.host}/team/app", REGISTRY_USERNAME=user,
               REGISTRY_PASSWORD=password, REGISTRY_INSECURE="true")
    argv = octopod_args("feat", "octopod")
    with CmdlineSampler() as sampler:
        runs = [run_script("tag_check", *argv, "--tag", "oci", env=env),
                run_script("tag_check", *argv, "--tag", "nope", env=env),
                run_script("tag_check", *argv, "--tag", "oci", env={**env, "OCTOPOD_DEBUG": "1"})]
    assert [r.returncode for r in runs] == [0, 1, 0], [r.stderr for r in runs]
    assert "tag not found" in runs[1].stderr
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    for result in runs:
        assert password not in result.stdout + result.stderr and basic not in result.stdout + result.stderr
    # The runs, as Python runs the task (the bash wrapper execs it at once).
    assert any(b"tag-check" in c for _, c in sampler.seen)
    never_in_argv(sampler, password, basic)
    assert leaks_in_files(tmp_path, [password, basic], allowed=set()) == []


def test_an_ssh_key_never_leaks_through_init_and_remote_cleanup(cluster, sshd, namespace, tmp_path):
    key = sshd.client_key.read_text()
    # The body lines that hold key material (the first is the format's constant header).
    secrets = key.strip().splitlines()[2:-1]
    home, tmpdir, srv = tmp_path / "home", tmp_path / "tmp", tmp_path / "srv"
    for path in (home, tmpdir, srv / "gone"):
        path.mkdir(parents=True)
    env = clean_env(home, TMPDIR=str(tmpdir), SSH_PRIVATE_KEY=key, SSH_KNOWN_HOSTS=sshd.keyscan(),
                    KUBECONFIG=str(cluster.kubeconfig), HELM_BIN=tool("helm4"), KUBECTL_BIN=tool("kubectl"),
                    REMOTE_CLEANUP_HOSTS=f"{sshd.user}@127.0.0.1:{sshd.port}",
                    # The sleep keeps the remote shell alive long enough for the sampler to see it.
                    REMOTE_CLEANUP_COMMANDS=f"sleep 0.5; rm -rf -- {srv}/{{name}}", REMOTE_CONNECT_TIMEOUT="5",
                    REMOTE_COMMAND_TIMEOUT="20")
    with CmdlineSampler() as sampler:
        runs = [run_script("init", env=env), run_script("cleanup", *octopod_args("gone", namespace), env=env)]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert not (srv / "gone").exists()  # the key was used: the remote command ran
    assert any(f"{srv}/gone".encode() in c for _, c in sampler.seen)  # and the sampler saw it run
    for result in runs:
        assert not [s for s in secrets if s in result.stdout + result.stderr]
    never_in_argv(sampler, *secrets)
    key_file = home / ".ssh" / "id_ed25519"
    assert key_file.read_text() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert leaks_in_files(tmp_path, secrets, allowed={key_file}) == []


def test_a_helm_repo_password_never_leaks(chart_repo, helm_bin, tmp_path):
    """init's `helm repo add` (and `repo update`), with each helm. HELM_BIN is a wrapper that
    records the argv it is given and stays 0.3 s before exec'ing helm with it, so the 5 ms sampler
    sees that argv for certain (a bare `helm repo add` may be over before a sweep of /proc)."""
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    argv_log = tmp_path / "helm-argv.log"
    wrapper = tmp_path / "helm"
    wrapper.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" '--' >> '{argv_log}'\nsleep 0.3\nexec '{helm_bin}' \"$@\"\n")
    wrapper.chmod(0o755)
    env = clean_env(home, TMPDIR=str(tmpdir), HELM_BIN=str(wrapper), CHART="octopod/app",
                    CHART_REPO_URL=chart_repo, HELM_REPO_USERNAME=REPO_USER, HELM_REPO_PASSWORD=REPO_PASSWORD,
                    HELM_REPO_TIMEOUT="60")
    tail = REPO_PASSWORD[REPO_PASSWORD.index("0rd"):]  # quote-free: found however YAML quotes the rest
    with CmdlineSampler() as sampler:
        result = run_script("init", env=env)
    assert result.returncode == 0, result.stderr
    assert tail not in result.stdout + result.stderr
    calls = [call.strip("\n").split("\n") for call in argv_log.read_text().split("--\n") if call.strip()]
    repo_add = ["repo", "add", "octopod", chart_repo, "--force-update", "--username", REPO_USER, "--password-stdin"]
    assert repo_add in calls and any(call[:2] == ["repo", "update"] for call in calls), calls
    # The sampler saw that argv: the wrapper's (`/bin/sh WRAPPER ARGS`) or helm's after the exec.
    wanted = [a.encode() for a in repo_add]
    assert any(wanted in (argv[1:], argv[2:]) for argv in (c.rstrip(b"\0").split(b"\0") for _, c in sampler.seen))
    never_in_argv(sampler, REPO_PASSWORD, tail)
    # helm keeps the credentials it needs for `helm repo update` in its repositories file: that
    # file, private, is the one place the password may be (the argv log holds none).
    repositories = home / ".config" / "helm" / "repositories.yaml"
    assert stat.S_IMODE(repositories.stat().st_mode) == 0o600
    assert leaks_in_files(tmp_path, [tail], allowed={repositories}) == []
