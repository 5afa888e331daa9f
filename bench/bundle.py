"""The /utils bundle against the venv's scripts/: check and info side by side (issue 7).

    .venv/bin/python bench/bundle.py [--rounds 15]

Builds the bundle (cached by source hash) into a temporary /utils, deploys one
release on the local API emulator (auto-ready), then times, interleaved:
scripts/<op> (the venv) and utils/<op> (the bundle, from its warm cache), for
check (when the task exists) and info; plus the bundle with no cache at all
(OCTOPOD_BUNDLE_NO_CACHE=1, unpacked per call: the fallback) and a cold first
call; and both homes through the warm command server (docs/warm.md), against one bare
`kubectl get deployment`, every warm call counted in the servers' logs.
Targets: the bundle's median at most 1.5x the venv's; a warm call at most half a kubectl read.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import ROOT, compare, report, stop_warm, timed, verdict, warm

from octopod_control.tasks import ns as product
from octopod_dev import bundle
from octopod_dev.emulator import start_emulator


def operations() -> list[str]:
    return [op for op in ("check", "info") if op in product.task_names]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        utils = work / "utils"
        bundle.build(utils)
        cluster = start_emulator(work, "--auto-ready")
        try:
            cluster.create_namespace("bench")
            (work / "run").mkdir(mode=0o700)
            env = dict(os.environ, HOME=str(work / "home"), XDG_CACHE_HOME=str(work / "home/.cache"),
                       KUBECONFIG=str(cluster.kubeconfig), HELM_BIN=str(ROOT / ".tools/bin/helm4"),
                       HELM_WAIT="false", NAMESPACE="bench", PROJECT_NAME="p", BASE_DOMAIN="b.com",
                       WARM="false", XDG_RUNTIME_DIR=str(work / "run"))
            common = ["--namespace", "bench", "--name", "web"]
            timed([str(ROOT / "scripts/create"), *common, "--tag", "v1"], env)
            cold = timed([str(utils / "info"), *common], env)  # unpacks into the cache
            print(f"bundle, first call (unpacks {bundle.PROGRAM} into the cache): {cold * 1000:.0f} ms")
            no_cache = dict(env, OCTOPOD_BUNDLE_NO_CACHE="1")
            venv_hot, served = warm(env, [str(ROOT / "scripts/info"), *common])
            bundle_hot, _ = warm(env, [str(utils / "info"), *common])  # same directory: served() counts both
            kubectl = [str(ROOT / ".tools/bin/kubectl"), "get", "deployment", "web-app", "-n", "bench"]
            for op in operations():
                extra = ["--tag", "v1"] if op == "check" else []
                argv = [*common, *extra]
                before = served()
                medians = compare({
                    f"venv scripts/{op}": lambda: timed([str(ROOT / "scripts" / op), *argv], env),
                    f"bundle utils/{op} (cached)": lambda: timed([str(utils / op), *argv], env),
                    f"bundle utils/{op} (no cache)": lambda: timed([str(utils / op), *argv], no_cache),
                    f"venv scripts/{op} (warm)": lambda: timed([str(ROOT / "scripts" / op), *argv], venv_hot),
                    f"bundle utils/{op} (warm)": lambda: timed([str(utils / op), *argv], bundle_hot),
                    "kubectl get deployment": lambda: timed(kubectl, env),
                }, rounds=opts.rounds)
                report(f"{op}: bundle vs venv, cold and warm", medians, f"venv scripts/{op}", opts.rounds)
                print(f"warm calls served: {served() - before} of {2 * (opts.rounds + 2)}")
                ratio = medians[f"bundle utils/{op} (cached)"] / medians[f"venv scripts/{op}"]
                print(f"{op}: bundle/venv = {ratio:.2f}x (target <= 1.5x)")
                base = medians["kubectl get deployment"]
                verdict(f"bundle {op} warm / one kubectl get", medians[f"bundle utils/{op} (warm)"] / base, 0.5)
                print(f"gain: bundle {op} warm / cold = "
                      f"{medians[f'bundle utils/{op} (warm)'] / medians[f'bundle utils/{op} (cached)']:.2f}x; "
                      f"venv {op} warm / cold = "
                      f"{medians[f'venv scripts/{op} (warm)'] / medians[f'venv scripts/{op}']:.2f}x")
            print(f"\n{bundle.PROGRAM}: {(utils / bundle.PROGRAM).stat().st_size / 1e6:.1f} MB")
        finally:
            stop_warm(env)
            cluster.stop()


if __name__ == "__main__":
    main()
