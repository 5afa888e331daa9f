"""Reliability: faults, load, hostile input, secrets (marker `reliability`; part of the normal run).

Faults are injected into the emulator (`/_emu/fault`: 500s or a hang) or made by pointing at a
closed port; nothing here waits longer than a few seconds past the configured timeouts.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_script
from tests.test_create import helm_values, octopod_args

pytestmark = pytest.mark.reliability


def one_clear_line(stderr: str) -> str:
    """The last line is the error; no traceback anywhere."""
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), stderr
    return last


# ---------------------------------------------------------------- faults
def test_create_with_the_api_gone_fails_fast_and_clearly(scripts, namespace, dead_kubeconfig):
    started = time.monotonic()
    done = scripts("create", *octopod_args("gone", namespace, "--tag", "v1"),
                   env={"KUBECONFIG": dead_kubeconfig, "HELM_TIMEOUT": "5"})
    assert done.returncode == 1
    # The ownership check reads the release's records first: that read names the API and why.
    assert one_clear_line(done.stderr) == "error: Kubernetes API http://127.0.0.1:9 unreachable: Connection refused"
    assert time.monotonic() - started < 30


def test_create_with_the_api_answering_500(cluster, scripts, namespace):
    started = time.monotonic()
    with cluster.fault("500", prefix="/api/v1/namespaces/" + namespace):
        done = scripts("create", *octopod_args("err500", namespace, "--tag", "v1"),
                       env={"HELM_TIMEOUT": "60"})
    assert done.returncode == 1
    # The injected fault's own message, long before helm's 60 s wait could end the run.
    assert "500 kube_emu: injected fault" in one_clear_line(done.stderr), done.stderr
    assert time.monotonic() - started < 30


def test_create_with_the_api_hanging_is_bounded(cluster, scripts, namespace):
    started = time.monotonic()
    with cluster.fault("hang", prefix="/api/v1/namespaces/" + namespace):
        done = scripts("create", *octopod_args("hang", namespace, "--tag", "v1"),
                       env={"HELM_TIMEOUT": "3"})
    assert done.returncode == 1
    assert "timed out after" in one_clear_line(done.stderr)
    assert time.monotonic() - started < 20


def test_info_with_the_api_hanging_still_answers_within_kube_timeout(cluster, scripts, namespace):
    started = time.monotonic()
    with cluster.fault("hang", prefix="/apis/networking.k8s.io"):
        done = scripts("info", *octopod_args("x", namespace), env={"KUBE_TIMEOUT": "1"})
    assert done.returncode == 0
    assert done.stdout == "app,https://x.staging.example.com\n"
    assert "timed out after 1s" in done.stderr
    assert time.monotonic() - started < 10


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
def hostile_corpus() -> list[tuple[str, list]]:
    """(id, argv after --namespace N) pairs; argv items may be bytes (invalid UTF-8)."""
    cases: list[tuple[str, list]] = []
    for name in ["", "-", "a-", "A", "a_b", "a.b", "a b", "a/b", "../x", "x;id", "$(id)", "`id`", "é",
                 "a" * 54, "1a", "-a", "a\nb", "a\tb", "--name", "*", "a,b"]:
        cases.append((f"name:{name!r}", ["--name", name]))
    for item in ["NOEQ", "=v", "1A=v", "A-B=v", "A B=v", "A.B=v", "ä=v"]:
        cases.append((f"env:{item!r}", ["--name", "ok", "--app-env-override", item]))
    for item in ["a..b=1", ".a=1", "a.=1", "=1", "a[0]=1", "a b=1", "noeq", "a.\tb=1"]:
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
    ]
    return cases


CORPUS = hostile_corpus()


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 50


@pytest.mark.parametrize("argv", [c[1] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_hostile_input_gets_64_and_one_line(octopod_env, namespace, argv):
    env = dict(octopod_env, HELM_BIN="/nonexistent/helm-must-not-run")
    command = [str(ROOT / "scripts" / "create"), "--namespace", namespace, *argv]
    done = subprocess.run(command, env=env, capture_output=True, timeout=60)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 64, stderr
    assert done.stdout == b""
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert "helm-must-not-run" not in stderr


def test_huge_and_many_values_are_accepted_verbatim(cluster, octopod_env, namespace):
    huge = "x" * 100_000 + "=,.[{\\ü"
    overrides = [a for i in range(1000) for a in ("--app-env-override", f"K{i}=v{i},{i}")]
    env = dict(octopod_env, HELM_WAIT="false")
    done = run_script("create", *octopod_args("big", namespace, "--app-env-override", f"HUGE={huge}",
                                              *overrides), env=env)
    assert done.returncode == 0, done.stderr[-1000:]
    values = helm_values(env, "big", namespace)["app"]["env"]
    assert values["HUGE"] == huge and values["K999"] == "v999,999" and len(values) == 1001


# ---------------------------------------------------------------- secrets
class CmdlineSampler:
    """Reads every process's argv from /proc while a run is under way."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        self.seen.append(Path(f"/proc/{pid}/cmdline").read_bytes())
                    except OSError:
                        pass
            time.sleep(0.005)

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
    secret = f"tok-{os.urandom(6).hex()}"
    env = dict(octopod_env, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with CmdlineSampler() as sampler, cluster.controller(namespace):
        done = run_script("create", *octopod_args("leak", namespace, "--tag", "v1",
                                                  "--app-env-override", f"API_TOKEN={secret}",
                                                  "--deployment-override", f"db.password={secret}"),
                          env=env)
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr
    # Our argv holds it (Octopod puts it there); no child process's argv may.
    children = [c for c in sampler.seen if secret.encode() in c and b"scripts/create" not in c
                and b"octopod_control" not in c]
    assert not children, children[:1]
    assert len(sampler.seen) > 50  # the sampler really ran during the create
    assert files_containing(tmp_path, secret.encode()) == []
    assert files_containing(Path(env["HOME"]), secret.encode()) == []
