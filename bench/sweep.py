"""check by release size against one bare `kubectl get`, info, and an Octopod status sweep.

    .venv/bin/python bench/sweep.py [--rounds 10] [--deployments 50]

Self-contained: starts its own API emulator (auto-ready) and deploys releases of 1,
10 and 100 workloads (tests/charts/workloads) plus N one-workload stagings. Then,
interleaved round after round:
- scripts/check on each release size and one bare `kubectl get deployment` (time);
- scripts/info;
- a status sweep: N checks one after another, as Octopod's status loop runs them,
  against N bare `kubectl get deployment` one after another.
And the API requests each check makes, by release size (target: the same number).
"""
from __future__ import annotations

import argparse

from common import ROOT, compare, emulated_cluster, report, timed

SIZES = (1, 10, 100)
CHART = ROOT / "tests" / "charts" / "workloads"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--deployments", type=int, default=50)
    opts = parser.parse_args()
    with emulated_cluster(BASE_DOMAIN="b.com", CHART=str(CHART)) as (work, cluster, env):
        script = lambda op: str(ROOT / "scripts" / op)  # noqa: E731
        for size in SIZES:
            timed([script("create"), "--name", f"r{size}", "--tag", "v1",
                   "--deployment-override", f"deployments={size}"], env)
        stagings = [f"s{i}" for i in range(opts.deployments)]
        for name in stagings:
            timed([script("create"), "--name", name, "--tag", "v1"], env)
        kubectl = [env["KUBECTL_BIN"], "get", "deployment", "r1-d0", "-n", "bench"]

        cases = {"kubectl get deployment (1 read)": lambda: timed(kubectl, env)}
        for size in SIZES:
            argv = [script("check"), "--name", f"r{size}", "--tag", "v1"]
            cases[f"scripts/check, {size} workloads"] = lambda argv=argv: timed(argv, env)
        cases["scripts/info"] = lambda: timed([script("info"), "--name", "r1"], env)
        medians = compare(cases, rounds=opts.rounds)
        report("check by release size vs one kubectl read", medians,
               "kubectl get deployment (1 read)", opts.rounds)

        def sweep_checks() -> float:
            return sum(timed([script("check"), "--name", n, "--tag", "v1"], env) for n in stagings)

        def sweep_kubectl() -> float:
            return sum(timed([env["KUBECTL_BIN"], "get", "deployment", f"{n}-d0", "-n", "bench"], env)
                       for n in stagings)

        rounds = max(3, opts.rounds // 3)
        sweep = compare({f"{len(stagings)} x kubectl get, one after another": sweep_kubectl,
                         f"{len(stagings)} x scripts/check (Octopod status sweep)": sweep_checks},
                        rounds=rounds, warmup=1)
        report("status sweep", sweep, f"{len(stagings)} x kubectl get, one after another", rounds)
        total = sweep[f"{len(stagings)} x scripts/check (Octopod status sweep)"]
        print(f"sweep of {len(stagings)}: {total:.1f} s, {total / len(stagings) * 1000:.0f} ms a deployment")

        print("\nAPI requests per check (healthy release)")
        for size in SIZES:
            cluster.reset_requests()
            timed([script("check"), "--name", f"r{size}", "--tag", "v1"], env)
            print(f"  {size:>3} workloads: {len(cluster.requests())} requests")


if __name__ == "__main__":
    main()
