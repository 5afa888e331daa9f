"""check by release size against one bare `kubectl get`, info, and an Octopod status sweep,
each cold and through the warm command server (issue 17, docs/warm.md).

    .venv/bin/python bench/sweep.py [--rounds 10] [--deployments 50]

Self-contained: starts its own API emulator (auto-ready) and deploys releases of 1,
10 and 100 workloads (tests/charts/workloads) plus N one-workload stagings. Then,
interleaved round after round:
- scripts/check on each release size (cold), scripts/check warm, and one bare
  `kubectl get deployment` (time);
- scripts/info, cold and warm;
- a status sweep: N checks one after another, as Octopod's status loop runs them, cold and
  warm, against N bare `kubectl get deployment` one after another.
Target (issue 17): the warm sweep at most half the kubectl sweep. Every warm call is counted
in the server's log, so a warm figure is never a cold run in disguise.
And the API requests each check makes, by release size (target: the same number).
"""
from __future__ import annotations

import argparse

from common import ROOT, compare, emulated_cluster, report, timed, verdict, warm

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
        hot, served = warm(env, [script("info"), "--name", "r1"])
        kubectl = [env["KUBECTL_BIN"], "get", "deployment", "r1-d0", "-n", "bench"]

        cases = {"kubectl get deployment (1 read)": lambda: timed(kubectl, env)}
        for size in SIZES:
            argv = [script("check"), "--name", f"r{size}", "--tag", "v1"]
            cases[f"scripts/check, {size} workloads"] = lambda argv=argv: timed(argv, env)
        one = [script("check"), "--name", "r1", "--tag", "v1"]
        cases["scripts/check, 1 workload, warm"] = lambda: timed(one, hot)
        cases["scripts/info"] = lambda: timed([script("info"), "--name", "r1"], env)
        cases["scripts/info, warm"] = lambda: timed([script("info"), "--name", "r1"], hot)
        before = served()
        medians = compare(cases, rounds=opts.rounds)
        warm_calls = 2 * (opts.rounds + 2)
        report("check by release size vs one kubectl read", medians,
               "kubectl get deployment (1 read)", opts.rounds)
        base = medians["kubectl get deployment (1 read)"]
        print(f"warm calls served: {served() - before} of {warm_calls}")
        verdict("warm check / one kubectl get", medians["scripts/check, 1 workload, warm"] / base, 0.5)
        verdict("warm info / one kubectl get", medians["scripts/info, warm"] / base, 0.5)
        print(f"gain: check warm / cold = "
              f"{medians['scripts/check, 1 workload, warm'] / medians['scripts/check, 1 workloads']:.2f}x; "
              f"info warm / cold = {medians['scripts/info, warm'] / medians['scripts/info']:.2f}x")

        def sweep(environment: dict[str, str]) -> float:
            return sum(timed([script("check"), "--name", n, "--tag", "v1"], environment) for n in stagings)

        def sweep_kubectl() -> float:
            return sum(timed([env["KUBECTL_BIN"], "get", "deployment", f"{n}-d0", "-n", "bench"], env)
                       for n in stagings)

        rounds = max(3, opts.rounds // 3)
        n = len(stagings)
        kube, cold, hot_name = (f"{n} x kubectl get, one after another",
                                f"{n} x scripts/check (Octopod status sweep)",
                                f"{n} x scripts/check, warm")
        before = served()
        result = compare({kube: sweep_kubectl, cold: lambda: sweep(env), hot_name: lambda: sweep(hot)},
                         rounds=rounds, warmup=1)
        report("status sweep", result, kube, rounds)
        print(f"warm checks served: {served() - before} of {(rounds + 1) * n}")
        print(f"sweep of {n}: cold {result[cold]:.2f} s ({result[cold] / n * 1000:.0f} ms a deployment), "
              f"warm {result[hot_name]:.2f} s ({result[hot_name] / n * 1000:.0f} ms), "
              f"kubectl {result[kube]:.2f} s ({result[kube] / n * 1000:.0f} ms)")
        verdict(f"warm sweep of {n} / {n} kubectl reads", result[hot_name] / result[kube], 0.5)
        print(f"gain: sweep warm / cold = {result[hot_name] / result[cold]:.2f}x; "
              f"cold sweep / kubectl = {result[cold] / result[kube]:.2f}x")

        print("\nAPI requests per check (healthy release)")
        for size in SIZES:
            cluster.reset_requests()
            timed([script("check"), "--name", f"r{size}", "--tag", "v1"], env)
            print(f"  {size:>3} workloads: {len(cluster.requests())} requests")


if __name__ == "__main__":
    main()
