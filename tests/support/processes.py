"""Interrupt helm mid-operation, as a pod eviction would (stopping servers: octopod_dev.processes)."""
from __future__ import annotations

import json
import subprocess
from typing import Sequence


def kill_helm_when(status: str, argv: Sequence[str], env: dict[str, str], release: str,
                   namespace: str) -> None:
    """Run helm (argv), and kill it once the release shows `status` (say, pending-upgrade).

    This is a run killed in the middle of its work, as a pod eviction or a timeout would.
    """
    helm = subprocess.Popen(list(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            shown = subprocess.run([argv[0], "status", release, "-n", namespace, "-o", "json"],
                                   env=env, capture_output=True, text=True, timeout=30)
            if shown.returncode == 0 and json.loads(shown.stdout)["info"]["status"] == status:
                return
        raise AssertionError(f"helm never recorded {status} for {release}")
    finally:
        helm.kill()
        helm.wait()
