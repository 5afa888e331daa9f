"""`invoke demo`: one Octopod round through scripts/* on a local API emulator.

The emulator (octopod_dev/emulator/kube_emu.py) serves the Kubernetes API that real
helm and kubectl talk to, but runs no controllers: this demo plays their part
(it marks workloads ready) and says so. One update rolls a tag that does not exist:
the demo plays the kubelet failing to pull it, and create's rollout follow stops helm
within seconds and says why; the next update fixes it. Nothing here touches a real cluster.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from octopod_dev.emulator import start_emulator

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
TOOLS = ROOT / ".tools" / "bin"
NAMESPACE = "octopod-demo"
NAME = "feature-login"
BAD_TAG = "v1.1.0-typo"
# What the demo's kubelet does with each step's rollout: marks it ready, or fails to pull its image.
READY, PULL_FAILS = "ready", "pull-fails"
FAIL_FAST_GRACE = "5"  # the demo's; the default 30 s lets a registry hiccup recover

STEPS: list[tuple[str, list[str], str]] = [
    ("create", ["--tag", "v1.0.0",
                "--app-env-override", "GREETING=hello, world",
                "--app-env-override", "FEATURE_FLAGS=a=1,b=2",
                "--deployment-override", "app.replicas=2"], "deploy the staging"),
    ("check", ["--tag", "v1.0.0"], "is it healthy and on the right tag?"),
    ("info", [], "the URLs Octopod shows"),
    ("update", ["--tag", BAD_TAG, "--app-env-override", "GREETING=hello again",
                "--deployment-override", "app.replicas=2"],
     "roll a tag that does not exist: the rollout fails fast and says why (expected: exit 1)"),
    ("update", ["--tag", "v1.1.0", "--app-env-override", "GREETING=hello again",
                "--deployment-override", "app.replicas=2"], "roll the right tag: the update fixes it"),
    ("check", ["--tag", "v1.1.0"], "healthy on the new tag?"),
    ("archive", [], "free the compute, keep the data"),
    ("archive_check", [], "is the compute gone?"),
    ("create", ["--tag", "v1.1.0", "--app-env-override", "GREETING=hello again",
                "--deployment-override", "app.replicas=2"], "restore (Octopod resends the same set)"),
    ("check", ["--tag", "v1.1.0"], "healthy after restore?"),
    ("archive", [], "archive again before cleanup"),
    ("cleanup", [], "free everything"),
    ("cleanup", [], "cleanup again: idempotent"),
]


def say(text: str) -> None:
    print(text, flush=True)


def run_demo(helm: str | None = None) -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="octopod-demo-") as tmp:
        work = Path(tmp)
        say("Starting the local Kubernetes API emulator (in-memory; no real cluster is touched).")
        cluster = start_emulator(work)
        try:
            cluster.create_namespace(NAMESPACE)
            env = demo_environment(cluster.kubeconfig, work, helm)
            say(f"API at {cluster.url}; helm: {env['HELM_BIN']}; namespace {NAMESPACE}\n")
            for script, args, purpose in STEPS:
                if not (SCRIPTS / script).exists():
                    say(f"--- {script}: not built yet, skipped\n")
                    continue
                failures += step(cluster, env, script, args, purpose)
        finally:
            cluster.stop()
    say("Demo complete." if not failures else f"Demo finished with {failures} failed step(s).")
    return 1 if failures else 0


def demo_environment(kubeconfig: Path, work: Path, helm: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCTOPOD_", "KUBE"))}
    env.update(
        HOME=str(work), XDG_CACHE_HOME=str(work / ".cache"),
        KUBECONFIG=str(kubeconfig), PROJECT_NAME="demo", BASE_DOMAIN="staging.example.com",
        NAMESPACE=NAMESPACE, HELM_TIMEOUT="60", FAIL_FAST_GRACE=FAIL_FAST_GRACE,
        HELM_BIN=helm or os.environ.get("HELM_BIN") or str(TOOLS / "helm4"),
        KUBECTL_BIN=os.environ.get("KUBECTL_BIN") or str(TOOLS / "kubectl"),
    )
    return env


def step(cluster, env: dict[str, str], script: str, args: list[str], purpose: str) -> int:
    argv = [str(SCRIPTS / script), "--project-name", "demo", "--base-domain", "staging.example.com",
            "--namespace", NAMESPACE, "--name", NAME, *args]
    say(f"--- {script}: {purpose}")
    say("$ " + " ".join(shlex.quote(a) for a in [f"scripts/{script}", *argv[1:]]))
    play = (PULL_FAILS if BAD_TAG in args else READY) if script in ("create", "update") else None
    if play == READY:
        say("  (simulation: the demo marks the workloads ready, as Kubernetes controllers would)")
    elif play == PULL_FAILS:
        say(f"  (simulation: the demo plays the kubelet failing to pull :{BAD_TAG}, with its events; "
            f"FAIL_FAST_GRACE={FAIL_FAST_GRACE} here)")
    started = time.monotonic()
    with simulation(cluster, play):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - started
    for line in done.stderr.splitlines():
        say(f"  stderr| {line}")
    for line in done.stdout.splitlines():
        say(f"  stdout| {line}")
    expected = 1 if play == PULL_FAILS else 0
    ok = done.returncode == expected
    verdict = "ok" if ok else "FAILED"
    if ok and expected:
        verdict = "ok: failed as it should, and said why"
    say(f"  => exit {done.returncode} in {elapsed:.2f}s {verdict}\n")
    return 0 if ok else 1


def simulation(cluster, play: str | None):
    """The controllers and the kubelet, as the step needs them (None: nothing to play)."""
    if play == READY:
        return cluster.controller(NAMESPACE)
    if play != PULL_FAILS:
        return nullcontext()
    image = f"registry.example.com/example/app:{BAD_TAG}"

    def kubelet_events(pod: dict) -> None:
        cluster.event(pod, "Failed", f'Failed to pull image "{image}": rpc error: code = NotFound desc = '
                                     f'failed to pull and unpack image "{image}": manifest unknown', count=2)
        cluster.event(pod, "Failed", "Error: ErrImagePull", count=2)
        cluster.event(pod, "Failed", "Error: ImagePullBackOff", count=3)

    return cluster.kubelet(NAMESPACE, f"{NAME}-app", {"state": {"waiting": {
        "reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}}, then=kubelet_events)

