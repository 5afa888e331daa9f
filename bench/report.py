"""Every benchmark, one after another, into one report (issue 8).

    .venv/bin/python bench/report.py [--quick]

Runs bench/create.py (helm 3 and helm 4), check.py, sweep.py, tag_check.py and
bundle.py; prints their tables and writes them to bench/results/latest.txt, ending
with a summary: every `verdict:` line (a target, met or not) and `gain:` line (the warm
command server against the cold path, issue 17) the benchmarks printed.
Each benchmark measures its cases side by side in one run (medians of >= 10),
so its ratios hold even though absolute times move with the machine's load.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def benches(quick: bool) -> list[list[str]]:
    rounds = "10" if quick else "15"
    return [
        ["create.py", "--rounds", rounds, "--helm", str(ROOT / ".tools/bin/helm4")],
        ["create.py", "--rounds", rounds, "--helm", str(ROOT / ".tools/bin/helm3")],
        ["check.py", "--rounds", rounds],
        ["sweep.py", "--rounds", "10", "--deployments", "20" if quick else "50"],
        ["tag_check.py", "--runs", rounds],
        ["bundle.py", "--rounds", rounds],
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds and a 20-deployment sweep")
    opts = parser.parse_args()
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    lines: list[str] = [f"# benchmark report, {time.strftime('%Y-%m-%d %H:%M:%S')}"]
    failed = 0
    for argv in benches(opts.quick):
        title = "## " + " ".join(argv)
        print(title, flush=True)
        done = subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]], cwd=HERE,
                              capture_output=True, text=True)
        print(done.stdout, flush=True)
        lines += [title, done.stdout]
        if done.returncode != 0:
            failed += 1
            print(done.stderr[-2000:], file=sys.stderr)
            lines.append(f"FAILED ({done.returncode}): {done.stderr[-500:]}")
    summary = [line for chunk in lines for line in chunk.splitlines()
               if line.startswith(("verdict:", "gain:"))]
    if summary:
        lines += ["## summary", *summary]
        print("## summary", *summary, sep="\n")
    (out_dir / "latest.txt").write_text("\n".join(lines) + "\n")
    print(f"report written to {out_dir / 'latest.txt'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
