"""Side-by-side timing: commands run interleaved in one session, medians and ratios reported.

These machines are shared and noisy, so only ratios measured in the same run mean much.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

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
