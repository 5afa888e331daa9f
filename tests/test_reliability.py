"""Reliability: faults, load, hostile input, secrets (marker `reliability`; part of the normal run).

This file covers create and info; test_reliability_ops.py the other operations. Faults are
injected into the emulator (`cluster.fault`: 500s or a hang on a path prefix, optionally one
method) or made by pointing at a closed port. Each fault test asserts the fault's own message
(the emulator's `500 ... kube_emu: injected fault`, or a timeout naming the request or command
that hung), so it fails when the fault is not injected; HELM_TIMEOUT stays 60 (octopod_env)
wherever helm's own wait could otherwise end the run the same way, and the time bounds are far
above what the runs take (a loaded 2-core machine) and below what the unbounded case would.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import ROOT, run_script, without_helm
from tests.test_create import helm_values, octopod_args

pytestmark = pytest.mark.reliability

INJECTED = "kube_emu: injected fault"  # what the emulator's injected 500 says


def one_clear_line(stderr: str) -> str:
    """The last line is the error; no traceback anywhere."""
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), stderr
    return last


def helm_write(env: dict[str, str]) -> str:
    """How helm writes a new Deployment: helm 3 creates it (POST), helm 4 applies it server-side
    (PATCH). Both update an existing one with PATCH."""
    return "POST" if os.path.basename(env["HELM_BIN"]) == "helm3" else "PATCH"


def release_statuses(cluster, namespace: str, release: str) -> list[str]:
    """The status of each of the release's records (helm's secret driver), oldest first."""
    items = cluster.api("GET", f"/api/v1/namespaces/{namespace}/secrets?labelSelector=owner%3Dhelm%2Cname%3D{release}")
    records = sorted(items["items"], key=lambda s: int(s["metadata"]["labels"]["version"]))
    return [r["metadata"]["labels"]["status"] for r in records]


# ---------------------------------------------------------------- faults
def test_create_with_the_api_gone_fails_fast_and_clearly(scripts, namespace, dead_kubeconfig):
    started = time.monotonic()
    done = scripts("create", *octopod_args("gone", namespace, "--tag", "v1"),
                   env={"KUBECONFIG": dead_kubeconfig, "HELM_WAIT": "false"})
    assert done.returncode == 1
    # The ownership check reads the release's records first: that read names the API and why.
    assert one_clear_line(done.stderr) == "error: Kubernetes API http://127.0.0.1:9 unreachable: Connection refused"
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_create_with_the_api_failing_before_helm_runs(cluster, scripts, namespace, mode):
    """The first request, the ownership read of the release's records, fails: helm never runs."""
    records = f"/api/v1/namespaces/{namespace}/secrets"
    started = time.monotonic()
    with cluster.fault(mode, prefix=records):
        done = scripts("create", *octopod_args("early", namespace, "--tag", "v1"),
                       env={"KUBE_TIMEOUT": "1", "HELM_WAIT": "false"})  # without the fault: exit 0
    elapsed = time.monotonic() - started
    assert done.returncode == 1
    line = one_clear_line(done.stderr)
    if mode == "500":
        assert line == f"error: Kubernetes API: GET {records}: 500 {INJECTED}"
    else:  # KUBE_TIMEOUT's message, naming the request; helm's 60 s never come into it
        assert line.startswith("error: Kubernetes API http://127.0.0.1:")
        assert line.endswith(f": GET {records} timed out after 1s"), line
    assert elapsed < 30, elapsed
    assert cluster.api("GET", records)["items"] == []  # no release record: helm never ran


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_create_with_the_api_failing_midway_then_a_retry_lands(cluster, scripts, octopod_env, namespace, mode):
    """The ownership read, helm's reads, its release record and the Service went through; then the
    Deployment's write fails (500) or never answers (hang). HELM_WAIT is off: without the fault
    the run succeeds. A hang is bounded by the helm process's own bound (HELM_TIMEOUT + 5 s,
    HELM_TIMEOUT=1 here), since helm puts no timeout on its API requests."""
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    env = {"HELM_WAIT": "false", "HELM_TIMEOUT": "60" if mode == "500" else "1"}
    args = octopod_args("mid", namespace, "--tag", "v1", "--app-env-override", "WHO=first")
    started = time.monotonic()
    with cluster.fault(mode, prefix=deployments, method=helm_write(octopod_env)):
        done = scripts("create", *args, env=env)
    elapsed = time.monotonic() - started
    assert done.returncode == 1
    line = one_clear_line(done.stderr)
    if mode == "500":
        assert line == "error: helm upgrade --install mid: failed with exit code 1 (helm's output is above)"
        assert INJECTED in done.stderr  # helm's own error line, above ours, quotes the API
    else:
        helm = os.path.basename(octopod_env["HELM_BIN"])
        assert line == f"error: {helm} upgrade: timed out after 6s"
    assert elapsed < 40, elapsed
    # The middle of the run: helm's record and the Service exist, the Deployment does not.
    # (helm marks the release failed, SIGTERM included; a helm killed outright would leave it
    # pending-install, which the next create recovers.)
    assert release_statuses(cluster, namespace, "mid") in (["failed"], ["pending-install"])
    assert cluster.api("GET", f"/api/v1/namespaces/{namespace}/services/mid-app")
    assert cluster.api("GET", f"{deployments}/mid-app") is None

    again = scripts("create", *args, env={"HELM_WAIT": "false"})
    assert again.returncode == 0, again.stderr
    assert helm_values(octopod_env, "mid", namespace)["app"] == {"env": {"WHO": "first"}, "tag": "v1"}
    assert cluster.api("GET", f"{deployments}/mid-app")
    assert release_statuses(cluster, namespace, "mid")[-1] == "deployed"


@without_helm  # info runs no helm
def test_info_with_the_api_hanging_still_answers_within_kube_timeout(cluster, scripts, namespace):
    started = time.monotonic()
    with cluster.fault("hang", prefix="/apis/networking.k8s.io"):
        done = scripts("info", *octopod_args("x", namespace), env={"KUBE_TIMEOUT": "1"})
    assert done.returncode == 0
    assert done.stdout == "app,https://x.staging.example.com\n"
    warning, = done.stderr.splitlines()
    assert warning.startswith("warning: info: Ingress hosts skipped: Kubernetes API http://127.0.0.1:")
    assert warning.endswith(f": GET /apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses "
                            "timed out after 1s"), warning
    assert time.monotonic() - started < 15


@without_helm  # the helm that is missing is the test's own
def test_missing_helm_binary_is_named(scripts, namespace):
    done = scripts("create", *octopod_args("nohelm", namespace), env={"HELM_BIN": "/nonexistent/helm"})
    assert done.returncode == 1
    assert "/nonexistent/helm" in one_clear_line(done.stderr)


# ---------------------------------------------------------------- load
def test_twenty_creates_at_once_all_succeed(cluster, octopod_env, namespace):
    names = [f"load-{i}" for i in range(20)]
    env = dict(octopod_env, HELM_WAIT="false")
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(
            lambda n: run_script("create", *octopod_args(n, namespace, "--tag", "v1",
                                                         "--app-env-override", f"WHO={n}"), env=env),
            names))
    failed = [(n, r.stderr[-500:]) for n, r in zip(names, results) if r.returncode != 0]
    assert not failed
    for name in names[:3] + names[-3:]:
        assert helm_values(env, name, namespace)["app"]["env"] == {"WHO": name}


def test_two_creates_of_the_same_deployment_take_turns(cluster, octopod_env, namespace):
    env = dict(octopod_env, HELM_WAIT="false")
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(
            lambda tag: run_script("create", *octopod_args("same", namespace, "--tag", tag), env=env),
            ["v1", "v2"]))
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    history = subprocess.run([env["HELM_BIN"], "history", "same", "-n", namespace, "-o", "json"],
                             env=env, capture_output=True, text=True, timeout=60)
    statuses = [r["status"] for r in json.loads(history.stdout)]
    assert statuses == ["superseded", "deployed"]


# ---------------------------------------------------------------- hostile input
CORPUS_SIZE = 60  # what the README and docs/reliability.md claim


def hostile_corpus() -> list[tuple[str, list]]:
    """(id, argv) pairs; argv items may be bytes (invalid UTF-8). `--namespace N` (the test's
    namespace) is put in front unless the case gives its own."""
    cases: list[tuple[str, list]] = []
    for name in ["", "-", "a-", "A", "a_b", "a.b", "a b", "a/b", "../x", "x;id", "$(id)", "`id`", "é",
                 "a" * 54, "1a", "-a", "a\nb", "a\tb", "--name", "*", "a,b"]:
        cases.append((f"name:{name!r}", ["--name", name]))
    for item in ["NOEQ", "=v", "1A=v", "A-B=v", "A B=v", "A.B=v", "ä=v"]:
        cases.append((f"env:{item!r}", ["--name", "ok", "--app-env-override", item]))
    for item in ["a..b=1", ".a=1", "a.=1", "=1", "a[-1]=1", "a b=1", "noeq", "a.\tb=1"]:
        cases.append((f"dep:{item!r}", ["--name", "ok", "--deployment-override", item]))
    for tag in ["bad tag", "-x", "a" * 129, "v1;id", "v1/x"]:
        cases.append((f"tag:{tag!r}", ["--name", "ok", "--tag", tag]))
    cases += [
        ("missing-name", []),
        ("flag-without-value", ["--name"]),
        ("tag-without-value", ["--name", "ok", "--tag"]),
        ("unknown-flag", ["--name", "ok", "--frobnicate", "1"]),
        ("short-flag", ["-n", "ok"]),
        ("duplicate-name", ["--name", "ok", "--name", "ok2"]),
        ("duplicate-tag", ["--name", "ok", "--tag", "a", "--tag", "b"]),
        ("positional", ["ok"]),
        ("second-task", ["--name", "ok", "info"]),
        ("core-flag", ["--name", "ok", "--dry"]),
        ("invalid-utf8-name", ["--name", b"ok\xff"]),
        ("invalid-utf8-value", ["--name", "ok", "--app-env-override", b"A=\xff\xfe"]),
        ("base-domain", ["--name", "ok", "--base-domain", "a b.com"]),
        # flag injection: a flag as the name, and a flag smuggled in as an override
        ("name=--help", ["--name=--help"]),
        ("override-is-a-flag", ["--name", "ok", "--app-env-override", "--name=evil"]),
        # path traversal in the namespace (the case's own, not the test's)
        ("namespace:'../etc'", ["--namespace", "../etc", "--name", "ok"]),
        # overrides reaching what Octopod owns, or a template a chart's tpl would run
        ("dep:protected-tag", ["--name", "ok", "--deployment-override", "app.tag=v2"]),
        ("env:template", ["--name", "ok", "--app-env-override", "X={{ .Release.Name }}"]),
        # very long (100 kB) and made of control characters: still one short line
        ("name:100kB-of-control-characters", ["--name", "a\x01" * 50_000]),
    ]
    return cases


CORPUS = hostile_corpus()


def test_the_corpus_has_the_cases_the_readme_claims():
    """Counts what pytest collects (not this module's list), and that no two cases are the same."""
    assert len({repr(argv) for _, argv in CORPUS}) == len(CORPUS), "a case is repeated"
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly",
         f"{Path(__file__).relative_to(ROOT)}::test_hostile_input_gets_64_and_one_line"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    items = [line for line in collected.stdout.splitlines() if "::test_hostile_input_gets_64_and_one_line[" in line]
    assert len(items) == CORPUS_SIZE, items


@without_helm  # argv validation: helm must never run, so once is enough
@pytest.mark.parametrize("argv", [c[1] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_hostile_input_gets_64_and_one_line(octopod_env, namespace, argv):
    prefix = [] if "--namespace" in argv else ["--namespace", namespace]
    command = [str(ROOT / "scripts" / "create"), *prefix, *argv]
    done = subprocess.run(command, env=octopod_env, capture_output=True, timeout=60)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 64, stderr
    assert done.stdout == b""
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert stderr.startswith("error: ") and len(stderr) < 400, stderr[:1000]
    assert "helm-must-not-run" not in stderr


def test_huge_and_many_values_are_accepted_verbatim(cluster, octopod_env, namespace):
    huge = "x" * 100_000 + "=,.[{\\ü"
    overrides = [a for i in range(1000) for a in ("--app-env-override", f"K{i}=v{i},{i}")]
    env = dict(octopod_env, HELM_WAIT="false")
    # A flag-shaped override is a value like any other: it lands in the values, not in --tag.
    done = run_script("create", *octopod_args("big", namespace, "--app-env-override", f"HUGE={huge}",
                                              "--deployment-override", "--tag=v9", *overrides), env=env)
    assert done.returncode == 0, done.stderr[-1000:]
    stored = helm_values(env, "big", namespace)
    values = stored["app"]["env"]
    assert values["HUGE"] == huge and values["K999"] == "v999,999" and len(values) == 1001
    assert stored["--tag"] == "v9" and "tag" not in stored["app"], {k: v for k, v in stored.items() if k != "app"}


# ---------------------------------------------------------------- secrets
class CmdlineSampler:
    """Reads every process's argv from /proc (every 5 ms) while a run is under way.

    `seen` holds each distinct (pid, argv) pair, argv NUL-separated as /proc shows it. A test
    tells its own processes (the test runner, the script it started, which Octopod's argv
    holds) from the children by PID, never by what their argv looks like."""

    def __init__(self) -> None:
        self.seen: set[tuple[int, bytes]] = set()
        self.sweeps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
                    except OSError:
                        continue
                    if argv:
                        self.seen.add((int(pid), argv))
            self.sweeps += 1
            time.sleep(0.005)

    def others(self, ours: set[int]) -> list[bytes]:
        """Every argv sampled from a process whose PID is not in `ours`, except an exact copy of
        one of ours: a child between fork and exec still shows its parent's memory, argv included
        (each run of helm starts so, for a moment). Equality, not a pattern: helm's argv differs."""
        seen = list(self.seen)
        own = {argv for pid, argv in seen if pid in ours}
        return [argv for pid, argv in seen if pid not in ours and argv not in own]

    def wait_for(self, found: Callable[[int, bytes], bool], timeout: float,
                 still: Callable[[], bool] = lambda: True) -> bool:
        """Wait until a sampled process satisfies `found`; False after timeout or once `still` fails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(found(pid, argv) for pid, argv in list(self.seen)):
                return True
            if not still():
                return any(found(pid, argv) for pid, argv in list(self.seen))
            time.sleep(0.02)
        return False

    def __enter__(self) -> "CmdlineSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and needle in path.read_bytes():
                hits.append(str(path))
        except OSError:
            pass
    return hits


def test_an_override_secret_never_leaks(cluster, octopod_env, namespace, tmp_path):
    """helm's upgrade runs while the secret is in play and is sampled: HELM_WAIT is on and
    nothing marks the workloads ready until the sampler has seen helm's argv, so helm cannot
    finish unseen. Only the create we started (Octopod puts the secret in its argv) may hold it."""
    secret = f"tok-{os.urandom(6).hex()}"
    env = dict(octopod_env, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    helm = octopod_env["HELM_BIN"].encode()
    argv = [str(ROOT / "scripts" / "create"),
            *octopod_args("leak", namespace, "--tag", "v1", "--app-env-override", f"API_TOKEN={secret}",
                          "--deployment-override", f"db.password={secret}")]
    with CmdlineSampler() as sampler:
        create = subprocess.Popen(argv, env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        ours = {os.getpid(), create.pid}

        def helm_upgrade(pid: int, cmdline: bytes) -> bool:
            return pid not in ours and cmdline.split(b"\0")[:4] == [helm, b"upgrade", b"--install", b"leak"]

        seen_helm = sampler.wait_for(helm_upgrade, 120, still=lambda: create.poll() is None)
        with cluster.controller(namespace):  # now helm's wait can end
            stdout, stderr = create.communicate(timeout=180)
    assert create.returncode == 0, stderr
    assert seen_helm, "the helm upgrade process was never sampled"
    assert secret not in stdout + stderr
    assert any(secret.encode() in c for pid, c in sampler.seen if pid == create.pid)  # the sampler saw ours
    children = [c[:300] for c in sampler.others(ours) if secret.encode() in c]
    assert not children, children[:1]
    assert files_containing(tmp_path, secret.encode()) == []
    assert files_containing(Path(env["HOME"]), secret.encode()) == []
