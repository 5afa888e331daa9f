"""The /utils bundle against the venv's scripts/: check and info side by side (issue 7).

    .venv/bin/python bench/bundle.py [--rounds 15]

Builds the bundle (cached by source hash) into a temporary /utils, deploys one
release on the local API emulator (auto-ready), then times, interleaved:
scripts/<op> (the venv) and utils/<op> (the bundle, from its warm cache), for
check (when the task exists) and info; plus the bundle with no cache at all
(OCTOPOD_BUNDLE_NO_CACHE=1, unpacked per call: the fallback) and a cold first
call. Target: the bundle's median at most 1.5x the venv's.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import ROOT, compare, report, timed

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
            env = dict(os.environ, HOME=str(work / "home"), XDG_CACHE_HOME=str(work / "home/.cache"),
                       KUBECONFIG=str(cluster.kubeconfig), HELM_BIN=str(ROOT / ".tools/bin/helm4"),
                       HELM_WAIT="false", NAMESPACE="bench", PROJECT_NAME="p", BASE_DOMAIN="b.com")
            common = ["--namespace", "bench", "--name", "web"]
            timed([str(ROOT / "scripts/create"), *common, "--tag", "v1"], env)
            cold = timed([str(utils / "info"), *common], env)  # unpacks into the cache
            print(f"bundle, first call (unpacks {bundle.PROGRAM} into the cache): {cold * 1000:.0f} ms")
            no_cache = dict(env, OCTOPOD_BUNDLE_NO_CACHE="1")
            for op in operations():
                extra = ["--tag", "v1"] if op == "check" else []
                argv = [*common, *extra]
                medians = compare({
                    f"venv scripts/{op}": lambda: timed([str(ROOT / "scripts" / op), *argv], env),
                    f"bundle utils/{op} (cached)": lambda: timed([str(utils / op), *argv], env),
                    f"bundle utils/{op} (no cache)": lambda: timed([str(utils / op), *argv], no_cache),
                }, rounds=opts.rounds)
                report(f"{op}: bundle vs venv", medians, f"venv scripts/{op}", opts.rounds)
                ratio = medians[f"bundle utils/{op} (cached)"] / medians[f"venv scripts/{op}"]
                print(f"{op}: bundle/venv = {ratio:.2f}x (target <= 1.5x)")
            print(f"\n{bundle.PROGRAM}: {(utils / bundle.PROGRAM).stat().st_size / 1e6:.1f} MB")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
