"""Benchmark: scripts/tag_check against one bare `curl -I` of the same manifest, cold and warm.

    .venv/bin/python bench/tag_check.py [--runs 15]

Self-contained: starts its own docker-registry instances on 127.0.0.1 (the tests'
helpers), then times, interleaved run by run, for an anonymous and a Basic-auth
registry: `curl -sfI` with the manifest Accept header (Basic sent pre-emptively,
so one round trip), `scripts/tag_check` (one round trip anonymous, two with Basic:
it learns the scheme from the 401), the same through the warm command server
(docs/warm.md; every warm call counted in the server's log), and `scripts/tag_check`
with REGISTRY_IMAGES unset (the cost of starting Python and Invoke, no HTTP at all).
Prints medians and the ratios tag_check / curl. Not a test: nothing here is collected by pytest.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import warm  # noqa: E402
from octopod_dev.warm_client import socket_dir, stop_servers  # noqa: E402
from tests.support.registry import ACCEPT, PASSWORD, USER, start_registries  # noqa: E402

SCRIPT = str(ROOT / "scripts" / "tag_check")
ARGV = ["--project-name", "demo", "--base-domain", "example.com", "--namespace", "octopod",
        "--name", "bench", "--tag", "multi"]


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = max(parser.parse_args().runs, 10)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "DOCKER_"))}
    base["REGISTRY_INSECURE"] = "true"
    with tempfile.TemporaryDirectory(prefix="bench-tag-check-") as tmp:
        registries = start_registries(Path(tmp))
        (Path(tmp) / "run").mkdir(mode=0o700)
        base.update(WARM="false", XDG_RUNTIME_DIR=str(Path(tmp) / "run"))
        try:
            cases = {
                "anonymous": (registries.open.host, [], {}),
                "basic": (registries.basic.host, ["-u", f"{USER}:{PASSWORD}"],
                          {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD}),
            }
            print(f"{runs} interleaved runs each; medians in ms "
                  f"(python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
            print(f"{'registry':<10} {'curl -I':>8} {'tag_check':>10} {'warm':>6} {'startup':>8} "
                  f"{'ratio':>6} {'warm ratio':>10} {'added':>7}")
            _, served = warm(base, [SCRIPT, *ARGV])  # starts the server (REGISTRY_IMAGES unset)
            ratios = {}
            for label, (host, curl_auth, creds) in cases.items():
                url = f"http://{host}/v2/team/app/manifests/multi"
                curl = ["curl", "-sfI", "-o", "/dev/null", "-H", f"Accept: {ACCEPT}", *curl_auth, url]
                env = {**base, "REGISTRY_IMAGES": f"{host}/team/app", **creds}
                hot = {**env, "WARM": "true", "WARM_LOG": "1"}
                bare = {**base}
                timed([SCRIPT, *ARGV], env)  # warm the .pyc files and the page cache
                samples: dict[str, list[float]] = {"curl": [], "tag_check": [], "warm": [], "startup": []}
                before = served()
                for _ in range(runs):
                    samples["curl"].append(timed(curl, base))
                    samples["tag_check"].append(timed([SCRIPT, *ARGV], env))
                    samples["warm"].append(timed([SCRIPT, *ARGV], hot))
                    samples["startup"].append(timed([SCRIPT, *ARGV], bare))
                if served() - before != runs:
                    raise SystemExit(f"only {served() - before} of {runs} warm tag_checks were served warm")
                med = {k: statistics.median(v) * 1000 for k, v in samples.items()}
                ratios[label] = (med["warm"] / med["curl"], med["warm"] / med["tag_check"])
                print(f"{label:<10} {med['curl']:>8.1f} {med['tag_check']:>10.1f} {med['warm']:>6.1f} "
                      f"{med['startup']:>8.1f} {med['tag_check'] / med['curl']:>5.1f}x "
                      f"{med['warm'] / med['curl']:>9.1f}x {med['tag_check'] - med['curl']:>+7.1f}")
            print("warm: scripts/tag_check through the warm command server (every call served warm); "
                  "startup: scripts/tag_check with REGISTRY_IMAGES unset (Python + Invoke, no HTTP); "
                  "added: tag_check - curl")
            for label, (to_curl, to_cold) in ratios.items():
                print(f"gain: tag_check ({label}) warm / cold = {to_cold:.2f}x; warm / curl -I = {to_curl:.1f}x")
        finally:
            stop_servers(socket_dir(base["XDG_RUNTIME_DIR"]))
            registries.stop()


if __name__ == "__main__":
    main()
