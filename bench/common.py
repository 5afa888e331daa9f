"""Side-by-side timing: commands run interleaved in one session, medians and ratios reported.

These machines are shared and noisy, so only ratios measured in the same run mean much.
Scripts run cold (WARM=false) unless a benchmark asks for the warm path (`warm`), with a
runtime directory of the benchmark's own, so its warm servers are its own and stop with it.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(argv: Sequence[str], env: dict[str, str], stdin: str | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(list(argv), env=env, input=stdin, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"benchmark command failed ({done.returncode}): {argv[0]}\n{done.stderr[-2000:]}")
    return elapsed


def compare(cases: dict[str, Callable[[], float]], rounds: int = 15, warmup: int = 2) -> dict[str, float]:
    """Run the cases interleaved, round after round; return the median seconds of each."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for round_no in range(warmup + rounds):
        for name, case in cases.items():
            elapsed = case()
            if round_no >= warmup:
                samples[name].append(elapsed)
    return {name: statistics.median(values) for name, values in samples.items()}


def warm(env: dict[str, str], start: Sequence[str]) -> tuple[dict[str, str], Callable[[], int]]:
    """The environment of the warm path (the venv client built, WARM_LOG on) and a count of the
    calls its servers served; `start` (a warm script call) starts the server, which is awaited."""
    from octopod_dev.warm_client import build, socket_dir

    build()
    warm_env = dict(env, WARM="true", WARM_LOG="1")
    directory = socket_dir(warm_env["XDG_RUNTIME_DIR"])

    def served() -> int:
        return sum(p.read_text().count(" call pid=") for p in directory.glob("*.log"))

    before = {p.name for p in directory.glob("*.sock")} if directory.is_dir() else set()
    timed(start, warm_env)
    deadline = time.monotonic() + 60
    while not ({p.name for p in directory.glob("*.sock")} - before) or " serving " not in "".join(
            p.read_text() for p in directory.glob("*.log")):
        if time.monotonic() > deadline:
            raise SystemExit(f"no warm server started in {directory}")
        time.sleep(0.05)
    return warm_env, served


def stop_warm(env: dict[str, str]) -> None:
    from octopod_dev.warm_client import socket_dir, stop_servers

    if env.get("XDG_RUNTIME_DIR"):
        stop_servers(socket_dir(env["XDG_RUNTIME_DIR"]))


def verdict(what: str, ratio: float, target: float) -> None:
    """One line report.py gathers into its summary."""
    print(f"verdict: {what} = {ratio:.2f}x (target <= {target:.2f}x): {'met' if ratio <= target else 'NOT MET'}")


def report(title: str, medians: dict[str, float], baseline: str, rounds: int) -> None:
    base = medians[baseline]
    print(f"\n{title} (median of {rounds}, interleaved)")
    print(f"{'case':<44} {'median ms':>10} {'ratio':>7} {'delta ms':>9}")
    for name, value in medians.items():
        print(f"{name:<44} {value * 1000:>10.1f} {value / base:>7.2f} {(value - base) * 1000:>9.1f}")


@contextlib.contextmanager
def emulated_cluster(**settings: str) -> Iterator[tuple[Path, Any, dict[str, str]]]:
    """A work dir, an auto-ready API emulator with namespace `bench`, and the scripts' environment."""
    from octopod_dev.emulator import start_emulator

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cluster = start_emulator(work, "--auto-ready")
        try:
            cluster.create_namespace("bench")
            (work / "run").mkdir(mode=0o700)
            env = dict(os.environ, HOME=str(work), XDG_CACHE_HOME=str(work / "cache"),
                       KUBECONFIG=str(cluster.kubeconfig), HELM_BIN=str(ROOT / ".tools/bin/helm4"),
                       KUBECTL_BIN=str(ROOT / ".tools/bin/kubectl"), HELM_WAIT="false",
                       NAMESPACE="bench", WARM="false", XDG_RUNTIME_DIR=str(work / "run"))
            env.update(settings)
            yield work, cluster, env
        finally:
            stop_warm(env)
            cluster.stop()
