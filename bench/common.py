"""Side-by-side timing: commands run interleaved in one session, medians and ratios reported.

These machines are shared and noisy, so only ratios measured in the same run mean much.
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
            env = dict(os.environ, HOME=str(work), XDG_CACHE_HOME=str(work / "cache"),
                       KUBECONFIG=str(cluster.kubeconfig), HELM_BIN=str(ROOT / ".tools/bin/helm4"),
                       KUBECTL_BIN=str(ROOT / ".tools/bin/kubectl"), HELM_WAIT="false",
                       NAMESPACE="bench")
            env.update(settings)
            yield work, cluster, env
        finally:
            cluster.stop()
