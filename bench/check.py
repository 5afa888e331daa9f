"""scripts/check on a healthy release, side by side with starting Python with Invoke and
with one bare `kubectl get deployment`, plus API requests per check by release size.

    .venv/bin/python bench/check.py [--rounds 15]

Self-contained: starts its own API emulator (auto-ready), deploys releases of 1, 10
and 100 Deployments from tests/charts/workloads through scripts/create, then runs
the three commands interleaved, round after round. Target: check <= 1.2x
`python -c "import invoke"`, and the same request count for every release size.
"""
from __future__ import annotations

import argparse

from common import ROOT, compare, emulated_cluster, report, timed

SIZES = (1, 10, 100)
CHART = ROOT / "tests" / "charts" / "workloads"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    opts = parser.parse_args()
    with emulated_cluster(CHART=str(CHART)) as (work, cluster, env):
        for size in SIZES:
            timed([str(ROOT / "scripts/create"), "--name", f"r{size}", "--tag", "v1",
                   "--deployment-override", f"deployments={size}"], env)
        check = [str(ROOT / "scripts/check"), "--name", "r1", "--tag", "v1"]
        cases = {
            "scripts/check --name r1 --tag v1": lambda: timed(check, env),
            'python -c "import invoke"': lambda: timed(
                [str(ROOT / ".venv/bin/python"), "-c", "import invoke"], env),
            # The floor every script pays: bash wrapper + Invoke's Program, no task body.
            "scripts/check --help": lambda: timed([str(ROOT / "scripts/check"), "--help"], env),
            "kubectl get deployment r1-d0": lambda: timed(
                [env["KUBECTL_BIN"], "get", "deployment", "r1-d0", "-n", "bench"], env),
        }
        medians = compare(cases, rounds=opts.rounds)
        report("check vs Python+Invoke start vs one kubectl read", medians,
               'python -c "import invoke"', opts.rounds)
        ratio = medians["scripts/check --name r1 --tag v1"] / medians['python -c "import invoke"']
        print(f"check / python+invoke = {ratio:.2f} (target <= 1.20: {'met' if ratio <= 1.2 else 'MISSED'})")
        print("\nAPI requests per check (healthy release)")
        for size in SIZES:
            cluster.reset_requests()
            timed([str(ROOT / "scripts/check"), "--name", f"r{size}", "--tag", "v1"], env)
            print(f"  {size:>3} Deployments: {len(cluster.requests())} requests")


if __name__ == "__main__":
    main()
