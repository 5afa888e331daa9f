"""Branches of real consequence that had no test (issue 12, finding 6), each with its exact exit
code, its one message line and the objects' state afterwards in the emulator.

Through scripts/* by absolute path with real helm 3 and 4 (the `helm_bin` fixture) wherever helm
runs. Where a branch refuses before any tool runs, HELM_BIN and KUBECTL_BIN are a tripwire that
records being run, and the test runs once (helm never runs there, so there is nothing to
parametrise). The tests act as the controllers the emulator lacks, as in test_lifecycle.py.
The static bundle's launcher tests build the bundle (marked `slow`, root) and come last.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from octopod_dev import bundle
from tests.conftest import ROOT, run_script, tool
from tests.support.processes import kill_helm_when
from tests.support.jail import OCTOPOD_ENV, UID, reset_home
from tests.test_bundle import jail  # noqa: F401 (a fixture)
from tests.test_create import helm_values, octopod_args
from tests.test_lifecycle import act_as_controllers, get, kubectl, stop_pods

LIFECYCLE = str(ROOT / "tests" / "charts" / "lifecycle")
WORKLOADS = str(ROOT / "tests" / "charts" / "workloads")
HOOKS = str(ROOT / "tests" / "charts" / "hooks")
EXAMPLE = str(ROOT / "charts" / "example")
ARCHIVED = "octopod.io/archived-replicas"
MERGE = "application/merge-patch+json"
ONE_HELM = pytest.mark.parametrize("helm_bin", ["helm4"], indirect=True)  # helm never runs there


# -- helpers -------------------------------------------------------------------------------
def lines(text: str) -> list[str]:
    return text.strip().splitlines()


def last_line(done: subprocess.CompletedProcess) -> str:
    return lines(done.stderr)[-1] if done.stderr.strip() else ""


def major_of(helm: str) -> str:
    return "4" if helm.endswith("helm4") else "3"


def script(path: Path, body: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def wrapped_helm(path: Path, real: str, cases: str) -> str:
    """A helm that answers some subcommands itself (shell `case` arms) and runs the real one otherwise."""
    return script(path, f'case "$1" in\n{cases}\nesac\nexec "{real}" "$@"\n')


@pytest.fixture
def tripwire(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """HELM_BIN and KUBECTL_BIN that record being run, then fail: a refusal runs neither."""
    ran = tmp_path / "tool-ran"
    path = script(tmp_path / "tripwire", f'echo "$0 $*" >> "{ran}"\nexit 97\n')
    return {"HELM_BIN": path, "KUBECTL_BIN": path}, ran


def api_requests(cluster) -> list[list]:
    """The API requests since the last reset, the test hooks' own left out."""
    return [r for r in cluster.requests() if not r[1].startswith("/_emu/")]


def helm_records(cluster, namespace: str, release: str) -> list[dict]:
    found = cluster.api("GET", f"/api/v1/namespaces/{namespace}/secrets?labelSelector=owner%3Dhelm")
    return [s for s in (found or {}).get("items", []) if s["metadata"]["labels"].get("name") == release]


def helm_status(env: dict[str, str], helm: str, release: str, namespace: str) -> str:
    shown = subprocess.run([helm, "status", release, "-n", namespace, "-o", "json"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["info"]["status"]


def counts(env, ns: str, release: str = "life") -> dict[str, int]:
    return {part: get(env, ns, f"{kind}/{release}-{part}")["spec"].get("replicas")
            for kind, part in (("deployment", "web"), ("deployment", "worker"), ("statefulset", "db"))}


def records(env, ns: str, release: str = "life") -> dict[str, str | None]:
    return {part: (get(env, ns, f"{kind}/{release}-{part}")["metadata"].get("annotations") or {}).get(ARCHIVED)
            for kind, part in (("deployment", "web"), ("deployment", "worker"), ("statefulset", "db"))}


def octopod_marks(obj: dict) -> list[str]:
    return [k for k in (obj["metadata"].get("annotations") or {}) if k.startswith("octopod.io/")]


def run_pods(cluster, ns: str, release: str, db_replicas: int = 1) -> None:
    """The StatefulSet and ReplicaSet controllers' work for the lifecycle chart: PVCs, running Pods."""
    act_as_controllers(cluster, ns, db_replicas, release)


def create_lifecycle(cluster, scripts, ns: str, *extra: str, env: dict | None = None,
                     name: str = "life", tag: str = "v1") -> subprocess.CompletedProcess:
    with cluster.controller(ns):
        done = scripts("create", *octopod_args(name, ns), "--tag", tag, *extra,
                       env={"CHART": LIFECYCLE, **(env or {})})
    assert done.returncode == 0, done.stderr
    return done


# ============================================================ target.py: the namespace guard
GUARD = "which belongs to the cluster or to Octopod"
RESERVED = [  # (DEPLOY_NAMESPACE, --namespace, --name, the namespace it would give)
    ("{name}", "stagings", "default", "default"),
    ("stg-{name}", "stg-octo", "octo", "stg-octo"),  # Octopod's own namespace
    ("kube-{name}", "stagings", "system", "kube-system"),
    ("openshift-{name}", "stagings", "console", "openshift-console"),
    ("openshift{name}", "stagings", "x", "openshiftx"),
]


@ONE_HELM
@pytest.mark.parametrize("template, octopod_ns, name, lands", RESERVED,
                         ids=[r[3] for r in RESERVED])
def test_a_per_staging_namespace_never_lands_in_a_reserved_one(cluster, scripts, tripwire, template,
                                                               octopod_ns, name, lands):
    tools, ran = tripwire
    cluster.reset_requests()
    done = scripts("create", "--namespace", octopod_ns, "--name", name, "--tag", "v1",
                   env={**tools, "DEPLOY_NAMESPACE": template})
    assert done.returncode == 64, done.stderr
    assert done.stdout == ""
    assert lines(done.stderr) == [f"error: --name: {name} would deploy into the namespace {lands}, {GUARD}"]
    assert not ran.exists(), ran.read_text()  # neither helm nor kubectl ran
    assert api_requests(cluster) == []  # nor was the API asked anything
    assert helm_records(cluster, lands, name) == []


@ONE_HELM
@pytest.mark.parametrize("operation", ["check", "archive", "archive_check", "cleanup"])
def test_every_operation_refuses_a_reserved_per_staging_namespace(cluster, scripts, tripwire, operation):
    tools, ran = tripwire
    cluster.reset_requests()
    done = scripts(operation, "--namespace", "stagings", "--name", "system",
                   env={**tools, "DEPLOY_NAMESPACE": "kube-{name}", "CLEANUP_NAMESPACE": "true"})
    assert done.returncode == 64, done.stderr
    assert lines(done.stderr) == [f"error: --name: system would deploy into the namespace kube-system, {GUARD}"]
    assert done.stdout == "" and not ran.exists()
    assert api_requests(cluster) == []
    assert cluster.api("GET", "/api/v1/namespaces/kube-system")  # cleanup never reached it


@ONE_HELM
def test_a_shared_namespace_is_not_guarded(cluster, scripts, tripwire):
    """DEPLOY_NAMESPACE without {name} is the operator's choice, never derived from a UI name:
    the guard does not apply (the run gets past it, to the tripwire helm)."""
    tools, ran = tripwire
    done = scripts("create", "--namespace", "default", "--name", "default", "--tag", "v1", env=tools)
    assert done.returncode == 1, done.stderr
    assert GUARD not in done.stderr
    # helm was reached (asked its version), and failed: it is the tripwire.
    assert last_line(done) == f"error: helm version: could not read the version of {tools['HELM_BIN']}"
    assert ran.read_text().split()[1:] == ["version", "--template", "{{.Version}}"]


BAD_TARGETS = [  # (variable, template, --name, the one error line)
    ("DEPLOY_NAMESPACE", "{name}_ns", "feat",
     "error: DEPLOY_NAMESPACE gives 'feat_ns', not a valid namespace"),
    ("DEPLOY_NAMESPACE", "stg-{name}-" + "x" * 60, "feat",
     f"error: DEPLOY_NAMESPACE gives 'stg-feat-{'x' * 60}', not a valid namespace"),
    ("RELEASE_NAME", "{name}.v1", "feat",
     "error: RELEASE_NAME gives 'feat.v1', not a valid helm release name"),
    ("RELEASE_NAME", "{project_name}-{name}", "f" * 50,
     f"error: RELEASE_NAME gives 'demo-{'f' * 50}', not a valid helm release name"),
    ("RELEASE_NAME", "rel-{nope}", "feat",
     "error: RELEASE_NAME='rel-{nope}': unknown placeholder {nope}; use {name}, {namespace}, "
     "{project_name}, {base_domain}, {tag}"),
]


@ONE_HELM
@pytest.mark.parametrize("operation", ["create", "check", "archive", "archive_check", "cleanup"])
@pytest.mark.parametrize("variable, template, name, message", BAD_TARGETS,
                         ids=[f"{v}={t[:20]}" for v, t, _, _ in BAD_TARGETS])
def test_an_invalid_rendered_release_or_namespace_is_a_configuration_error(
        cluster, scripts, tripwire, namespace, operation, variable, template, name, message):
    tools, ran = tripwire
    cluster.reset_requests()
    done = scripts(operation, *octopod_args(name, namespace), env={**tools, variable: template})
    assert done.returncode == 78, done.stderr
    assert lines(done.stderr) == [message]
    assert done.stdout == "" and not ran.exists()
    assert api_requests(cluster) == []


# ============================================================ RELEASE_NAME other than --name
def test_a_release_named_other_than_the_deployment_end_to_end(cluster, scripts, octopod_env, namespace):
    """RELEASE_NAME=rel-{name}: every operation finds the release, its objects and its Pods by the
    release name, and the ownership mark by the deployment's."""
    ns, kenv = namespace, octopod_env
    env = {"CHART": LIFECYCLE, "RELEASE_NAME": "rel-{name}"}
    args = octopod_args("life", ns)
    done = create_lifecycle(cluster, scripts, ns, env=env)
    assert f"[octopod] deployed {ns}/rel-life" in done.stderr
    (record,) = helm_records(cluster, ns, "rel-life")
    assert record["metadata"]["labels"]["octopod.io/staging"] == "life"
    assert helm_records(cluster, ns, "life") == []
    assert helm_values(kenv, "rel-life", ns)["app"]["tag"] == "v1"

    ready = scripts("check", *args, "--tag", "v1", env=env)
    assert (ready.returncode, ready.stdout, ready.stderr) == (0, "", "")
    stale = scripts("check", *args, "--tag", "v2", env=env)
    assert stale.returncode == 3
    assert lines(stale.stderr) == ["tag mismatch: release rel-life runs tag v1 (app.tag), requested v2"]

    info = scripts("info", *args, env=env)
    assert info.returncode == 0, info.stderr
    assert info.stdout.splitlines() == ["app,https://life.staging.example.com",
                                        "rel-life-web,http://rel-life.staging.example.com"]

    kubectl(kenv, "scale", "deployment/rel-life-worker", "--replicas=3", "-n", ns)
    run_pods(cluster, ns, "rel-life")
    done = scripts("archive", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert f"[octopod] archive: {ns}/rel-life scaled down (4 change(s))" in done.stderr
    assert counts(kenv, ns, "rel-life") == {"web": 0, "worker": 0, "db": 0}
    assert records(kenv, ns, "rel-life") == {"web": "2", "worker": "3", "db": "1"}
    assert get(kenv, ns, "cronjob/rel-life-report")["spec"]["suspend"] is True

    running = scripts("archive_check", *args, env=env)
    assert running.returncode == 1
    assert "pod/rel-life-web-0: Running" in running.stderr and "pod/rel-life-db-0: Running" in running.stderr
    stop_pods(cluster, ns)
    archived = scripts("archive_check", *args, env=env)
    assert archived.returncode == 0, archived.stderr
    assert "[octopod] life: archived, no compute left" in archived.stderr

    done = create_lifecycle(cluster, scripts, ns, env=env)  # restore
    assert "restore: recorded values of 4 workload(s) of rel-life handled" in done.stderr
    assert counts(kenv, ns, "rel-life") == {"web": 2, "worker": 3, "db": 1}
    assert records(kenv, ns, "rel-life") == {"web": None, "worker": None, "db": None}
    assert not get(kenv, ns, "cronjob/rel-life-report")["spec"].get("suspend")

    assert scripts("archive", *args, env=env).returncode == 0
    stop_pods(cluster, ns)
    done = scripts("cleanup", *args, env=env)
    assert done.returncode == 0, done.stderr
    left = get(kenv, ns, "all,pvc,secret,cm")["items"]
    assert [f"{i['kind']}/{i['metadata']['name']}" for i in left if "life" in i["metadata"]["name"]
            or (i["metadata"].get("labels") or {}).get("name") == "rel-life"] == []
    assert helm_records(cluster, ns, "rel-life") == []


# ============================================================ archive: finished and suspended Jobs
@pytest.mark.parametrize("outcome", ["Complete", "Failed"])
def test_archive_skips_a_finished_job(cluster, scripts, octopod_env, namespace, outcome):
    ns, kenv = namespace, octopod_env
    args = octopod_args("life", ns)
    overrides = ("--deployment-override", "job=true")
    create_lifecycle(cluster, scripts, ns, *overrides)  # the controller ran the Job: Complete
    if outcome == "Failed":
        cluster.api("PATCH", f"/apis/batch/v1/namespaces/{ns}/jobs/life-migrate/status", {"status": {
            "succeeded": None, "completionTime": None, "failed": 2, "conditions": [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}, MERGE)
    assert get(kenv, ns, "job/life-migrate")["status"]["conditions"][0]["type"] == outcome

    done = scripts("archive", *args, env={"CHART": LIFECYCLE})
    assert done.returncode == 0, done.stderr
    assert "[octopod] archive: job/life-migrate already finished" in done.stderr
    assert f"[octopod] archive: {ns}/life scaled down (4 change(s))" in done.stderr  # not the Job
    job = get(kenv, ns, "job/life-migrate")
    assert not job["spec"].get("suspend") and octopod_marks(job) == []
    assert counts(kenv, ns) == {"web": 0, "worker": 0, "db": 0}
    stop_pods(cluster, ns)
    archived = scripts("archive_check", *args, env={"CHART": LIFECYCLE})
    assert archived.returncode == 0, archived.stderr  # a finished Job holds no compute


def test_what_the_user_suspended_stays_suspended_through_archive_and_restore(
        cluster, scripts, octopod_env, namespace):
    ns, kenv = namespace, octopod_env
    args = octopod_args("life", ns)
    overrides = ("--deployment-override", "job=true")
    create_lifecycle(cluster, scripts, ns, *overrides)
    # The migration still runs (one active Pod, not finished) ...
    cluster.api("PATCH", f"/apis/batch/v1/namespaces/{ns}/jobs/life-migrate/status",
                {"status": {"active": 1, "succeeded": None, "completionTime": None, "conditions": None}},
                MERGE)
    # ... and the user suspended it and the CronJob, before Octopod archived the staging.
    for what in ("cronjob/life-report", "job/life-migrate"):
        kubectl(kenv, "patch", what, "-n", ns, "--type=merge", "--patch", '{"spec":{"suspend":true}}')

    done = scripts("archive", *args, env={"CHART": LIFECYCLE})
    assert done.returncode == 0, done.stderr
    assert "[octopod] archive: cronjob/life-report already suspended" in done.stderr
    assert "[octopod] archive: job/life-migrate already suspended" in done.stderr
    assert f"[octopod] archive: {ns}/life scaled down (3 change(s))" in done.stderr  # the three scaled
    for what in ("cronjob/life-report", "job/life-migrate"):
        obj = get(kenv, ns, what)
        assert obj["spec"]["suspend"] is True and octopod_marks(obj) == [], what  # no record written
    stop_pods(cluster, ns)
    assert scripts("archive_check", *args, env={"CHART": LIFECYCLE}).returncode == 0

    done = create_lifecycle(cluster, scripts, ns, *overrides)  # restore
    assert "restore: recorded values of 3 workload(s) of life handled" in done.stderr
    assert counts(kenv, ns) == {"web": 2, "worker": 1, "db": 1}
    for what in ("cronjob/life-report", "job/life-migrate"):
        obj = get(kenv, ns, what)
        assert obj["spec"]["suspend"] is True and octopod_marks(obj) == [], what  # still the user's


# ============================================================ restore: an unreadable record
def test_restore_with_an_unreadable_record_warns_and_keeps_helms_value(cluster, scripts, octopod_env,
                                                                        namespace):
    ns, kenv = namespace, octopod_env
    args = octopod_args("life", ns)
    create_lifecycle(cluster, scripts, ns)
    kubectl(kenv, "scale", "statefulset/life-db", "--replicas=2", "-n", ns)
    assert scripts("archive", *args, env={"CHART": LIFECYCLE}).returncode == 0
    assert records(kenv, ns) == {"web": "2", "worker": "1", "db": "2"}
    # Records edited into something that is not a count (by hand, by another tool).
    kubectl(kenv, "annotate", "deployment/life-worker", f"{ARCHIVED}=x", "--overwrite", "-n", ns)
    kubectl(kenv, "annotate", "deployment/life-web", f"{ARCHIVED}=-1", "--overwrite", "-n", ns)

    done = create_lifecycle(cluster, scripts, ns)  # restore
    warnings = sorted(line for line in lines(done.stderr) if line.startswith("warning:"))
    assert warnings == [
        f"warning: restore: deployment/life-web: {ARCHIVED}='-1' is not a value; left as helm set it",
        f"warning: restore: deployment/life-worker: {ARCHIVED}='x' is not a value; left as helm set it"]
    # web: the chart's 2 (helm set it); worker: the chart sets none, so archive's 0 stays;
    # db: its readable record still comes back. Every record is gone.
    assert counts(kenv, ns) == {"web": 2, "worker": 0, "db": 2}
    assert records(kenv, ns) == {"web": None, "worker": None, "db": None}


# ============================================================ ARCHIVE_STRATEGY=uninstall
def test_uninstall_archive_fails_clearly_when_helm_uninstall_fails(cluster, scripts, octopod_env,
                                                                   namespace, helm_bin, tmp_path):
    ns, kenv = namespace, octopod_env
    env = {"CHART": LIFECYCLE, "ARCHIVE_STRATEGY": "uninstall"}
    create_lifecycle(cluster, scripts, ns, env=env)
    failing = wrapped_helm(tmp_path / "helm", helm_bin,
                           'uninstall) echo "Error: uninstall: the fake helm refuses" >&2; exit 1 ;;')
    done = scripts("archive", *octopod_args("life", ns), env={**env, "HELM_BIN": failing})
    assert done.returncode == 1
    assert last_line(done) == "error: helm uninstall life: failed with exit code 1 (helm's output is above)"
    assert "Error: uninstall: the fake helm refuses" in done.stderr
    assert helm_status(kenv, helm_bin, "life", ns) == "deployed"  # nothing was freed
    assert counts(kenv, ns) == {"web": 2, "worker": 1, "db": 1}


def test_uninstall_archive_of_a_release_already_gone_succeeds(cluster, scripts, octopod_env, namespace,
                                                              helm_bin, tmp_path):
    ns, kenv = namespace, octopod_env
    env = {"CHART": LIFECYCLE, "ARCHIVE_STRATEGY": "uninstall"}
    args = octopod_args("life", ns)
    create_lifecycle(cluster, scripts, ns, env=env)
    # Gone between our read and helm's uninstall (another run, an operator): helm says not found.
    raced = wrapped_helm(tmp_path / "helm", helm_bin,
                         'uninstall) echo "Error: uninstall: Release not loaded: life: release: not found" >&2; '
                         "exit 1 ;;")
    done = scripts("archive", *args, env={**env, "HELM_BIN": raced})
    assert done.returncode == 0, done.stderr
    assert last_line(done) == f"[octopod] archive: release {ns}/life was already gone"
    # Uninstalled already (kept history, as our archive leaves it): nothing to do, no helm run.
    gone = subprocess.run([helm_bin, "uninstall", "life", "-n", ns, "--keep-history"], env=kenv,
                          capture_output=True, text=True, timeout=120)
    assert gone.returncode == 0, gone.stderr
    for name in ("life", "never-made"):
        done = scripts("archive", *octopod_args(name, ns), env=env)
        assert done.returncode == 0, done.stderr
        assert last_line(done) == f"[octopod] archive: release {ns}/{name} is not installed: nothing to archive"
    assert helm_status(kenv, helm_bin, "life", ns) == "uninstalled"


# ============================================================ restore: the pre-read fails
def test_restore_is_done_by_the_re_read_when_the_pre_read_fails(cluster, scripts, octopod_env, namespace):
    """create's RestoreStep looks for archive records while helm works; when that look fails it
    must not conclude "nothing archived": the re-read after the upgrade restores the counts."""
    ns, kenv = namespace, octopod_env
    create_lifecycle(cluster, scripts, ns)
    kubectl(kenv, "scale", "deployment/life-worker", "--replicas=3", "-n", ns)
    kubectl(kenv, "scale", "statefulset/life-db", "--replicas=2", "-n", ns)
    assert scripts("archive", *octopod_args("life", ns), env={"CHART": LIFECYCLE}).returncode == 0
    assert counts(kenv, ns) == {"web": 0, "worker": 0, "db": 0}

    collection = f"/apis/apps/v1/namespaces/{ns}/deployments"
    cluster.reset_requests()
    # The first GET under the Deployments collection (the pre-read's LIST, well before helm's
    # first request) answers 500; every later one, helm's and the re-read's, is served.
    with cluster.fault("500", prefix=collection, method="GET", times=1):
        done = create_lifecycle(cluster, scripts, ns)
    failed = [(method, url) for method, url, status in api_requests(cluster) if status == 500]
    assert failed == [("GET", f"{collection}?limit=500")]
    assert "restore: recorded values of 4 workload(s) of life handled" in done.stderr
    assert counts(kenv, ns) == {"web": 2, "worker": 3, "db": 2}
    assert records(kenv, ns) == {"web": None, "worker": None, "db": None}


# ============================================================ create: recovering a pending release fails
@pytest.mark.parametrize("left, failing", [("pending-install", "uninstall"), ("pending-upgrade", "rollback")])
def test_a_pending_release_that_cannot_be_recovered_fails_clearly(cluster, scripts, octopod_env, namespace,
                                                                  helm_bin, tmp_path, left, failing):
    ns, name = namespace, "stuck"
    env = dict(octopod_env, HELM_TIMEOUT="30")
    if left == "pending-upgrade":
        with cluster.controller(ns):
            assert scripts("create", *octopod_args(name, ns), "--tag", "v1").returncode == 0
        argv = [helm_bin, "upgrade", name, EXAMPLE, "-n", ns, "--wait", "--timeout", "30s",
                "--set", "app.tag=v2"]
    else:
        mark = f"octopod.io/managed-by=octopod-control,octopod.io/staging={name}"  # as create marks it
        argv = [helm_bin, "upgrade", "--install", name, EXAMPLE, "-n", ns, "--wait", "--timeout", "30s",
                "--labels", mark]
    kill_helm_when(left, argv, env, name, ns)
    revisions = len(helm_records(cluster, ns, name))
    broken = wrapped_helm(tmp_path / "helm", helm_bin,
                          f'{failing}) echo "Error: {failing}: the fake helm refuses" >&2; exit 1 ;;')
    with cluster.controller(ns):
        done = scripts("create", *octopod_args(name, ns), "--tag", "v3",
                       env={"HELM_BIN": broken, "HELM_TIMEOUT": "30"})
    assert done.returncode == 1
    assert last_line(done) == f"error: release {name}: could not recover the pending release"
    assert f"Error: {failing}: the fake helm refuses" in done.stderr
    assert ("rolling back to revision 1" if failing == "rollback" else "never deployed; removing it") \
        in done.stderr
    assert helm_status(env, helm_bin, name, ns) == left  # as it was: no second upgrade ran
    assert len(helm_records(cluster, ns, name)) == revisions


# ============================================================ helm version detection
def version_cache(octopod_env: dict[str, str]) -> Path:
    return Path(octopod_env["XDG_CACHE_HOME"]) / "octopod-control" / "helm-major"


def cache_text(path: str, major: str) -> str:
    st = os.stat(path)
    return f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n{major}"


def recording_helm(path: Path, real: str, log: Path) -> str:
    return script(path, f'echo "$*" >> "{log}"\nexec "{real}" "$@"\n')


def helm_calls(log: Path, subcommand: str) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines() if line.split()[:1] == [subcommand]]


def wait_flags(upgrade: list[str]) -> list[str]:
    return [a for a in upgrade if a.startswith("--wait")]


WAIT = {"3": ["--wait"], "4": ["--wait=watcher"]}


def test_the_helm_major_version_is_detected_once_and_cached(cluster, scripts, octopod_env, namespace,
                                                             helm_bin, tmp_path):
    major, log = major_of(helm_bin), tmp_path / "helm.log"
    shim = recording_helm(tmp_path / "bin" / "helm", helm_bin, log)
    with cluster.controller(namespace):
        for operation, tag in (("create", "v1"), ("update", "v2")):
            done = scripts(operation, *octopod_args("ver", namespace), "--tag", tag, env={"HELM_BIN": shim})
            assert done.returncode == 0, done.stderr
    assert helm_calls(log, "version") == [["version", "--template", "{{.Version}}"]]  # once for both runs
    assert version_cache(octopod_env).read_text() == cache_text(shim, major)
    assert [wait_flags(u) for u in helm_calls(log, "upgrade")] == [WAIT[major], WAIT[major]]


def test_a_replaced_helm_binary_is_detected_again(cluster, scripts, octopod_env, namespace, helm_bin,
                                                  tmp_path):
    """The cache is keyed by the binary's path, size and mtime: another binary at the same path
    (an image upgrade from helm 3 to 4, or back) is asked its version again."""
    other = tool("helm3") if major_of(helm_bin) == "4" else tool("helm4")
    log, path = tmp_path / "helm.log", tmp_path / "bin" / "helm"
    shim = recording_helm(path, helm_bin, log)
    env = {"HELM_BIN": shim}
    with cluster.controller(namespace):
        assert scripts("create", *octopod_args("one", namespace), "--tag", "v1", env=env).returncode == 0
        assert version_cache(octopod_env).read_text() == cache_text(shim, major_of(helm_bin))
        # Replaced: another helm behind the same path (a new size and mtime).
        recording_helm(path, other, log)
        done = scripts("create", *octopod_args("two", namespace), "--tag", "v1", env=env)
        assert done.returncode == 0, done.stderr
        assert version_cache(octopod_env).read_text() == cache_text(shim, major_of(other))
        # Same size, only a new mtime: still asked again.
        stamp = os.stat(path).st_mtime_ns + 5_000_000_000
        os.utime(path, ns=(stamp, stamp))
        done = scripts("update", *octopod_args("two", namespace), "--tag", "v2", env=env)
        assert done.returncode == 0, done.stderr
    assert len(helm_calls(log, "version")) == 3
    assert version_cache(octopod_env).read_text() == cache_text(shim, major_of(other))
    assert [wait_flags(u) for u in helm_calls(log, "upgrade")] == [
        WAIT[major_of(helm_bin)], WAIT[major_of(other)], WAIT[major_of(other)]]


def fake_helm(tmp_path: Path, version_body: str) -> tuple[str, Path]:
    """A helm whose `version` runs version_body; anything else is recorded and fails."""
    ran = tmp_path / "helm-ran"
    path = script(tmp_path / "fake" / "helm",
                  f'if [ "$1" = version ]; then\n{version_body}\nfi\necho "$*" >> "{ran}"\nexit 97\n')
    return path, ran


@ONE_HELM
@pytest.mark.parametrize("version", ["v2.17.0", "v5.0.0"])
def test_an_unsupported_helm_is_refused(cluster, scripts, octopod_env, namespace, tmp_path, version):
    helm, ran = fake_helm(tmp_path, f"echo {version}; exit 0")
    done = scripts("create", *octopod_args("old", namespace), "--tag", "v1", env={"HELM_BIN": helm})
    assert done.returncode == 1
    assert last_line(done) == f"error: helm {version} is not supported (need helm 3 or 4)"
    assert not ran.exists()  # no upgrade was attempted
    assert not version_cache(octopod_env).exists()  # a refusal is not cached
    assert helm_records(cluster, namespace, "old") == []


@ONE_HELM
@pytest.mark.parametrize("body", [
    "echo 'Client: &version.Version{SemVer:\"unknown\"}'; exit 0",  # not a version
    "exit 0",  # nothing at all
    "echo v3.18.0; echo 'Error: cannot read its config' >&2; exit 1",  # a version, but it failed
], ids=["garbage", "empty", "failed"])
def test_an_unreadable_helm_version_is_an_error(cluster, scripts, octopod_env, namespace, tmp_path, body):
    helm, ran = fake_helm(tmp_path, body)
    done = scripts("create", *octopod_args("what", namespace), "--tag", "v1", env={"HELM_BIN": helm})
    assert done.returncode == 1
    assert last_line(done) == f"error: helm version: could not read the version of {helm}"
    assert not ran.exists() and not version_cache(octopod_env).exists()
    assert helm_records(cluster, namespace, "what") == []


# ============================================================ check: helm hooks, ReplicaFailure
def test_check_leaves_helm_hooks_out(cluster, scripts, octopod_env, namespace):
    """A post-install hook Deployment that never becomes ready (labelled as the release's, so
    check's LIST sees it): check judges only the release's own workloads."""
    ns, kenv = namespace, octopod_env
    env = {"CHART": HOOKS, "HELM_WAIT": "false"}
    done = scripts("create", *octopod_args("hk", ns), "--tag", "v1", env=env)
    assert done.returncode == 0, done.stderr
    hook = get(kenv, ns, "deployment/hk-seed")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert hook["metadata"]["labels"]["app.kubernetes.io/instance"] == "hk"

    waiting = scripts("check", *octopod_args("hk", ns), env=env)
    assert waiting.returncode == 1
    assert lines(waiting.stderr) == ["deployment/hk-web: failed, 0/1 available, 0 updated: "
                                     "spec change not yet observed by the controller"]
    cluster.ready(ns, name="hk-web")  # the release's own Deployment; the hook never
    done = scripts("check", *octopod_args("hk", ns), "--tag", "v1", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert not (get(kenv, ns, "deployment/hk-seed").get("status") or {}).get("availableReplicas")


QUOTA = ('pods "rf-d0-5c4f8b-x7k2p" is forbidden: exceeded quota: compute, requested: cpu=1, '
         'used: cpu=4, limited: cpu=4')


UNAVAILABLE = "not available (MinimumReplicasUnavailable)"


@pytest.mark.parametrize("available, code, line", [
    (1, 2, f"deployment/rf-d0: partial, 1/2 available, 1 updated: {UNAVAILABLE}; replica failure: {QUOTA}"),
    (0, 1, f"deployment/rf-d0: failed, 0/2 available, 0 updated: {UNAVAILABLE}; replica failure: {QUOTA}"),
    # Every count met while the Available condition is still False: not ready (kstatus's
    # DeploymentNotAvailable), the condition and the failure its reasons.
    (2, 2, f"deployment/rf-d0: partial, 2/2 available, 2 updated: {UNAVAILABLE}; replica failure: {QUOTA}"),
], ids=["partial", "none-available", "counts-met"])
def test_check_reports_a_deployment_replica_failure(cluster, scripts, namespace, available, code, line):
    env = {"CHART": WORKLOADS, "HELM_WAIT": "false"}
    done = scripts("create", *octopod_args("rf", namespace), "--tag", "v1",
                   "--deployment-override", "replicas=2", env=env)
    assert done.returncode == 0, done.stderr
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/rf-d0"
    generation = cluster.api("GET", path)["metadata"].get("generation", 1)
    cluster.api("PATCH", f"{path}/status", {"status": {
        "observedGeneration": generation, "replicas": available, "updatedReplicas": available,
        "readyReplicas": available, "availableReplicas": available, "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": QUOTA}]}},
        MERGE)
    checked = scripts("check", *octopod_args("rf", namespace), "--tag", "v1", env=env)
    assert checked.returncode == code, checked.stderr
    assert checked.stdout == ""
    assert lines(checked.stderr) == ([line] if line else [])


# ============================================================ exit 78: configuration values
HELM_DRIVER_LINE = "error: HELM_DRIVER='sql': expected secret or configmap"
TAG_KEY_LINE = "error: TAG_KEY: key 'app..tag' has an empty path segment"
CONFIG_CASES = [  # (script, environment, extra flags, the one error line)
    ("create", {"HELM_DRIVER": "sql"}, ["--tag", "v1"], HELM_DRIVER_LINE),
    ("check", {"HELM_DRIVER": "sql"}, [], HELM_DRIVER_LINE),
    ("archive", {"HELM_DRIVER": "sql"}, [], HELM_DRIVER_LINE),
    ("cleanup", {"HELM_DRIVER": "sql"}, [], HELM_DRIVER_LINE),
    ("create", {"TAG_KEY": "app..tag"}, ["--tag", "v1"], TAG_KEY_LINE),
    ("check", {"TAG_KEY": "app..tag"}, ["--tag", "v1"], TAG_KEY_LINE),
    ("info", {"INFO_URLS": "app"}, [], "error: INFO_URLS: 'app' is not key=template (a key holds no comma)"),
    ("info", {"INFO_URLS": "app=https://{name} a,b=https://x"}, [],
     "error: INFO_URLS: 'a,b=https://x' is not key=template (a key holds no comma)"),
    ("info", {"INFO_URLS": "app=https://{host}"}, [],
     "error: INFO_URLS='https://{host}': unknown placeholder {host}; use {name}, {namespace}, "
     "{project_name}, {base_domain}, {tag}"),
    ("create", {"CHART": ""}, ["--tag", "v1"], "error: CHART: not set (a chart path, repo/chart or oci://…)"),
]


@ONE_HELM
@pytest.mark.parametrize("operation, variables, extra, message", CONFIG_CASES,
                         ids=[f"{s}-{next(iter(v))}={next(iter(v.values()))[:12]}"
                              for s, v, _, _ in CONFIG_CASES])
def test_a_bad_configuration_value_exits_78(cluster, scripts, tripwire, namespace, operation, variables,
                                            extra, message):
    tools, ran = tripwire
    done = scripts(operation, *octopod_args("conf", namespace), *extra, env={**tools, **variables})
    assert done.returncode == 78, done.stderr
    *before, error = lines(done.stderr)
    assert error == message
    assert all(line.startswith("[octopod] ") for line in before), before  # log lines only (create's)
    assert done.stdout == "" and not ran.exists()
    assert helm_records(cluster, namespace, "conf") == []


def init_env(home: Path, **extra: str) -> dict[str, str]:
    drop = ("OCTOPOD_", "HELM_", "KUBE", "SSH_", "REMOTE_", "DOCKER_", "CHART", "XDG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOME=str(home), USER="octopod", **extra)
    return env


@pytest.mark.parametrize("variables, message", [
    ({"CHART_REPO_URL": "ftp://charts.example.com/stable"},
     "error: CHART_REPO_URL='ftp://charts.example.com/stable': expected an http(s):// chart repository URL"),
    ({"CHART_REPO_URL": "charts.example.com"},
     "error: CHART_REPO_URL='charts.example.com': expected an http(s):// chart repository URL"),
    ({"CHART_REPO_URL": "https://charts.example.com", "HELM_REPO_NAME": "my repo"},
     "error: HELM_REPO_NAME='my repo': letters, digits, '-', '_' and '.' only"),
    ({"CHART_REPO_URL": "https://charts.example.com", "CHART": "acme+co/app"},  # the name from CHART
     "error: HELM_REPO_NAME='acme+co': letters, digits, '-', '_' and '.' only"),
], ids=["ftp-scheme", "no-scheme", "repo-name", "repo-name-from-chart"])
def test_init_refuses_a_bad_chart_repository_setting_with_78(tripwire, tmp_path, variables, message):
    tools, ran = tripwire
    home = tmp_path / "home"
    home.mkdir()
    done = run_script("init", env=init_env(home, **tools, **variables))
    assert done.returncode == 78, done.stderr
    assert lines(done.stderr) == [message]
    assert done.stdout == "" and not ran.exists()
    assert list(home.rglob("*")) == []  # nothing written


# ============================================================ init: helm repo update fails
@pytest.fixture
def flaky_chart_repo() -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """A chart repository whose index.yaml is served once (helm repo add), then answers 500."""
    seen: list[tuple[str, int]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if not self.path.rstrip("/").endswith("/index.yaml"):
                code, body = 404, b""
            elif not any(code == 200 for _, code in seen):
                code, body = 200, b"apiVersion: v1\nentries: {}\ngenerated: \"2024-01-01T00:00:00Z\"\n"
            else:
                code, body = 500, b"index unavailable\n"
            seen.append((self.path, code))
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: the one it got is the one used
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/charts", seen
    finally:
        server.shutdown()
        server.server_close()


def test_init_fails_clearly_when_helm_repo_update_fails(helm_bin, tmp_path, flaky_chart_repo):
    url, seen = flaky_chart_repo
    home = tmp_path / "home"
    home.mkdir()
    env = init_env(home, HELM_BIN=helm_bin, CHART_REPO_URL=url, HELM_REPO_NAME="flaky",
                   HELM_REPO_TIMEOUT="60")
    done = run_script("init", env=env)
    assert done.returncode == 1, done.stderr
    assert last_line(done) == "error: helm repo update: failed (helm's output is above)"
    assert f"[octopod] helm repo add flaky {url}" in done.stderr
    assert "500" in done.stderr  # helm's own account of the failed download
    assert seen == [("/charts/index.yaml", 200), ("/charts/index.yaml", 500)]
    assert f"url: {url}" in (home / ".config" / "helm" / "repositories.yaml").read_text()


# ============================================================ the static bundle's launcher (last)
# Built by test_bundle.py's `jail` fixture (cached by source hash; needs root for the chroot).


def corrupted(image: bytes, how: str) -> bytes:
    data = bytearray(image)
    if how == "truncated":  # a copy cut short: no trailer
        return bytes(data[: len(data) // 2])
    offset, size = struct.unpack_from("<QQ", data, len(data) - bundle.TRAILER.size + 8)
    data[offset + size // 2] ^= 0xFF  # one flipped bit pattern in the middle of the payload
    return bytes(data)


@pytest.mark.slow
@pytest.mark.parametrize("how, message", [
    ("flipped", "payload checksum mismatch: the executable is corrupt"),
    ("truncated", "no payload (a truncated or rebuilt file?)"),
])
def test_the_launcher_refuses_a_corrupt_payload_with_70(jail, tmp_path, how, message):
    image = tmp_path / "octopod-control"
    image.write_bytes(corrupted((jail / "utils" / "octopod-control").read_bytes(), how))
    image.chmod(0o755)
    for name in ("cache", "home", "tmp"):
        (tmp_path / name).mkdir(mode=0o700)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path / "tmp"),
           "OCTOPOD_BUNDLE_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([str(image), "config"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 70, done.stderr
    assert done.stdout == ""
    assert done.stderr == f"error: octopod-control launcher: {message}\n"
    for name in ("cache", "home", "tmp"):  # nothing unpacked anywhere, no partial left
        assert list((tmp_path / name).rglob("*")) == [], name


@pytest.mark.slow
def test_two_first_runs_at_once_both_succeed_with_one_unpacked_entry(jail):
    """Two calls on a fresh cache both unpack (each into its own .new- directory, seen while they
    run); one publishes the entry by its rename, the other removes its copy and runs the winner's."""
    home = reset_home(jail)
    cache = home / ".cache" / "octopod-control"
    barrier = jail / "tmp" / "go"
    barrier.unlink(missing_ok=True)
    # Each waits (in the jail's busybox sh) until both are up, so the two first runs overlap.
    wait = "touch /tmp/up-$$; while [ ! -e /tmp/go ]; do usleep 2000; done; exec /utils/octopod-control config"
    argv = ["chroot", f"--userspec={UID}:{UID}", str(jail), "/bin/env", "-i", *OCTOPOD_ENV,
            "/bin/sh", "-c", wait]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        deadline = time.monotonic() + 120
        while len(list((jail / "tmp").glob("up-*"))) < 2:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "not started"
            time.sleep(0.01)
        barrier.touch()
        unpacking: set[str] = set()  # the private unpack directories seen while they run
        while any(p.poll() is None for p in procs):
            if cache.is_dir():
                unpacking |= {p.name for p in cache.iterdir() if p.name.startswith(".new-")}
            time.sleep(0.002)
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        barrier.unlink(missing_ok=True)
        for up in (jail / "tmp").glob("up-*"):
            up.unlink()
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "CHART=charts/example" in out.splitlines()
    assert len(unpacking) == 2, unpacking  # both unpacked at once
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 1, entries  # one published entry; the loser's unpack is gone
    key = entries[0]
    assert len(key) == bundle.KEY_SIZE and (cache / key / ".complete").read_text() == key
